"""Turning HTTP requests into the commands the use cases take (camelCase in, dataclasses out)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from shared.api.validation import (
    ValidationError,
    boolean,
    choice,
    email,
    identifier,
    instant,
    locale,
    plain_text,
    query_instant,
    read_json,
    required_text,
    span,
    text,
    time_zone,
)
from shared.domain import branding as brand
from shared.domain import reminders
from shared.domain.attendance import LessonOutcome
from shared.domain.booking import BookingStatus, Participant, ParticipantRole
from shared.domain.preferences import TutorPreferences
from shared.domain.subject import MAX_TEMPLATE_CHARS, SubjectTemplate, TemplateError
from shared.domain.tenant import (
    AllowedPresenters,
    LobbyBypassScope,
    MeetingChatMode,
    TutorChoices,
)
from shared.services.bookings import Approval, NewBooking
from shared.services.teams_settings import (
    UNSET,
    AttendanceChange,
    BrandingChange,
    OptionsChange,
    SettingsChange,
)
from shared.storage.bookings import BookingPage, BookingQuery, ListPosition

MAX_PARTICIPANTS = 20
MAX_LIST = 200
MAX_PAGE_TOKEN = 600
_PAGE_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")  # ASCII digits only ("²" is a digit to str.isdigit)


def booking_id(req: func.HttpRequest) -> str:
    """The route's booking id, as sent: the repository refuses one that cannot be a key (400),
    after the caller's role was checked."""
    return str(req.route_params.get("id") or "")


def idempotency_key(req: func.HttpRequest) -> str | None:
    """The optional Idempotency-Key header: 1-255 visible ASCII characters."""
    value: str | None = req.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not 0 < len(value) <= 255 or not all(" " < c <= "~" for c in value):
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is typical)",
            "invalid_idempotency_key",
        )
    return value


def no_body(req: func.HttpRequest) -> None:
    read_json(req, allowed=())


def new_booking(req: func.HttpRequest, now: datetime, horizon: timedelta) -> NewBooking:
    body = read_json(
        req,
        allowed=(
            "subject",
            "level",
            "startDateTime",
            "endDateTime",
            "timeZone",
            "participants",
            "internalNotes",
        ),
        required=("subject", "startDateTime", "endDateTime", "timeZone", "participants"),
    )
    start, end = span(body, now=now, horizon=horizon)
    return NewBooking(
        subject=required_text(body, "subject", max_length=200),
        level=text(body, "level", max_length=100),
        start=start,
        end=end,
        time_zone=time_zone(body["timeZone"], "timeZone"),
        participants=_participants(body["participants"]),
        internal_notes=text(body, "internalNotes", max_length=4000, multiline=True),
    )


def _participants(raw: Any) -> tuple[Participant, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("participants must be a non-empty list", "invalid_value")
    if len(raw) > MAX_PARTICIPANTS:
        raise ValidationError(f"at most {MAX_PARTICIPANTS} participants", "too_many")
    found: list[Participant] = []
    for index, item in enumerate(raw):
        where = f"participants[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(f"{where} must be an object", "invalid_type")
        unknown = sorted(set(item) - {"userId", "role", "email", "displayName", "locale"})
        if unknown:
            raise ValidationError(
                f"{where}: unknown field(s) {', '.join(unknown)}", "unknown_field"
            )
        found.append(
            Participant(
                user_id=identifier(item.get("userId"), f"{where}.userId"),
                role=choice(item.get("role"), f"{where}.role", ParticipantRole),
                email=email(item.get("email"), f"{where}.email"),
                display_name=text(item, "displayName", max_length=200),
                locale=None
                if item.get("locale") is None
                else locale(item["locale"], f"{where}.locale"),
            )
        )
    if len({p.user_id for p in found}) != len(found):
        raise ValidationError("a participant is listed twice", "duplicate_participant")
    return tuple(found)


def booking_query(req: func.HttpRequest) -> tuple[BookingQuery, str | None]:
    params = req.params
    unknown = sorted(set(params) - {"status", "participant", "from", "to", "limit", "pageToken"})
    if unknown:
        raise ValidationError(f"Unknown query parameter(s): {', '.join(unknown)}", "unknown_field")
    status = params.get("status")
    limit_text = params.get("limit", "100")
    if not _WHOLE_NUMBER.fullmatch(limit_text) or not 1 <= int(limit_text) <= MAX_LIST:
        raise ValidationError(f"limit must be a whole number from 1 to {MAX_LIST}", "invalid_value")
    raw_participant = params.get("participant")
    participant = None if raw_participant is None else identifier(raw_participant, "participant")
    query = BookingQuery(
        status=None if status is None else choice(status, "status", BookingStatus),
        start_from=query_instant(params, "from"),
        start_to=query_instant(params, "to"),
        limit=int(limit_text),
    )
    token = params.get("pageToken")
    if token is not None:
        query = replace(query, after=_page_position(token, query, participant))
    return query, participant


def next_page_token(page: BookingPage, query: BookingQuery, participant: str | None) -> str | None:
    """The opaque `pageToken` of the page after `page`: where it ends, bound to the filters."""
    after = page.next_after
    if after is None:
        return None
    body = {
        "s": after.start.isoformat(),
        "b": after.booking_id,
        "q": _list_fingerprint(query, participant),
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _page_position(token: str, query: BookingQuery, participant: str | None) -> ListPosition:
    bad = ValidationError("pageToken is not one this list gave out", "invalid_page_token")
    if len(token) > MAX_PAGE_TOKEN or not _PAGE_TOKEN.fullmatch(token):
        raise bad
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        not isinstance(body, dict)
        or set(body) != {"s", "b", "q"}
        or not all(isinstance(v, str) for v in body.values())
    ):
        raise bad
    if body["q"] != _list_fingerprint(query, participant):
        raise ValidationError(
            "pageToken belongs to a list with other filters: send the same status, "
            "participant, from and to as the request that returned it",
            "invalid_page_token",
        )
    try:
        return ListPosition(instant(body["s"], "pageToken"), identifier(body["b"], "pageToken"))
    except ValidationError:
        raise bad from None


def _list_fingerprint(query: BookingQuery, participant: str | None) -> str:
    def moment(value: datetime | None) -> str | None:
        return None if value is None else value.astimezone(UTC).isoformat()

    filters = [participant, query.status, moment(query.start_from), moment(query.start_to)]
    return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:16]


def approval(req: func.HttpRequest) -> Approval:
    body = read_json(req, allowed=("generateTeamsMeeting", "assigneeId", "internalNotes"))
    assignee = body.get("assigneeId")
    return Approval(
        generate_teams_meeting=boolean(body, "generateTeamsMeeting"),
        assignee_id=identifier(assignee, "assigneeId") if assignee is not None else None,
        internal_notes=text(body, "internalNotes", max_length=4000, multiline=True),
    )


def reason(req: func.HttpRequest) -> str | None:
    return text(read_json(req, allowed=("reason",)), "reason", max_length=1000, multiline=True)


def outcome(req: func.HttpRequest) -> LessonOutcome | None:
    """The optional outcome staff saw, for a booking completed by hand."""
    value = read_json(req, allowed=("outcome",)).get("outcome")
    return None if value is None else choice(value, "outcome", LessonOutcome)


def new_times(
    req: func.HttpRequest, now: datetime, horizon: timedelta
) -> tuple[datetime, datetime]:
    body = read_json(
        req, allowed=("startDateTime", "endDateTime"), required=("startDateTime", "endDateTime")
    )
    return span(body, now=now, horizon=horizon)


def settings_change(req: func.HttpRequest) -> SettingsChange:
    body = read_json(
        req,
        allowed=(
            "organizerUpn",
            "meetingOptions",
            "participantsCanReschedule",
            "branding",
            "defaultLocale",
            "tutorChoices",
            "reminderOffsets",
            "attendance",
        ),
        body_required=True,
    )
    organizer: object = UNSET
    if "organizerUpn" in body:
        raw = body["organizerUpn"]
        organizer = None if raw in (None, "") else email(raw, "organizerUpn")
    options = None
    if body.get("meetingOptions") is not None:
        options = _options(body["meetingOptions"])
    default_locale: object = UNSET
    if "defaultLocale" in body:
        raw = body["defaultLocale"]
        default_locale = None if raw is None else locale(raw, "defaultLocale")
    return SettingsChange(
        organizer_upn=organizer,
        meeting_options=options,
        participants_can_reschedule=boolean(body, "participantsCanReschedule"),
        branding=_branding(body["branding"]) if "branding" in body else None,
        default_locale=default_locale,
        tutor_choices=tutor_choices(body["tutorChoices"]) if "tutorChoices" in body else None,
        reminder_offsets=(
            reminder_offsets(body["reminderOffsets"]) if "reminderOffsets" in body else None
        ),
        attendance=_attendance(body.get("attendance")),
    )


# What each attendance threshold may be: a grace of at most an hour keeps every deadline (an
# hour at least) after the report is first asked for.
_ATTENDANCE_RANGES = {
    "minimumMinutes": (0, 240),
    "graceMinutes": (0, 60),
    "deadlineHours": (1, 168),
}


def _attendance(raw: Any) -> AttendanceChange | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValidationError("attendance must be an object", "invalid_type")
    unknown = sorted(set(raw) - {*_ATTENDANCE_RANGES, "noShowMailTo"})
    if unknown:
        raise ValidationError(f"attendance: unknown field(s) {', '.join(unknown)}", "unknown_field")
    values: dict[str, int | None] = {}
    for name, (least, most) in _ATTENDANCE_RANGES.items():
        value = raw.get(name)
        # JSON has one kind of number: 10.0 is the whole number 10, as JSON Schema says.
        whole = type(value) is int or (type(value) is float and value.is_integer())
        if value is not None and not (whole and least <= value <= most):
            raise ValidationError(
                f"attendance.{name} must be a whole number from {least} to {most}",
                "invalid_value",
            )
        values[name] = None if value is None else int(value)
    mail_to: object = UNSET
    if "noShowMailTo" in raw:
        given = raw["noShowMailTo"]
        mail_to = (
            None
            if given in (None, "")
            else email(given, "attendance.noShowMailTo", "invalid_email")
        )
    return AttendanceChange(
        minimum_minutes=values["minimumMinutes"],
        grace_minutes=values["graceMinutes"],
        deadline_hours=values["deadlineHours"],
        no_show_mail_to=mail_to,
    )


def reminder_offsets(raw: Any) -> tuple[int, ...]:
    """Minutes before a session its participants are reminded: at most four distinct values,
    each 1..10080; [] turns reminders off."""
    problem = reminders.offsets_problem(raw)
    if problem is not None:
        message, code = problem
        raise ValidationError(f"reminderOffsets {message}", code)
    return reminders.normalized(raw)


# JSON name -> `Branding` field.
_BRANDING_FIELDS = {
    "displayName": "display_name",
    "logoUrl": "logo_url",
    "accentColor": "accent_color",
    "replyTo": "reply_to",
    "contactLine": "contact_line",
    "footerText": "footer_text",
}


def _branding(raw: Any) -> BrandingChange:
    """The branding fields sent: each a value, or null (or "") to clear it; `branding: null`
    clears them all."""
    if raw is None:
        return BrandingChange(dict.fromkeys(_BRANDING_FIELDS.values()))
    if not isinstance(raw, dict):
        raise ValidationError("branding must be an object", "invalid_type")
    unknown = sorted(set(raw) - set(_BRANDING_FIELDS))
    if unknown:
        raise ValidationError(f"branding: unknown field(s) {', '.join(unknown)}", "unknown_field")
    given = {_BRANDING_FIELDS[name]: _branding_value(raw, name) for name in raw}
    return BrandingChange(given)


def _branding_value(raw: dict[str, Any], name: str) -> str | None:
    where = f"branding.{name}"
    value = raw[name]
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{where} must be a string or null", "invalid_type")
    if name in ("displayName", "contactLine", "footerText"):
        limit = {
            "displayName": brand.MAX_DISPLAY_NAME_CHARS,
            "contactLine": brand.MAX_CONTACT_LINE_CHARS,
            "footerText": brand.MAX_FOOTER_TEXT_CHARS,
        }[name]
        return plain_text({where: value}, where, max_length=limit, multiline=name == "footerText")
    if value is None or value == "":
        return None
    if name == "logoUrl":
        problem = brand.logo_url_problem(value)
        if problem is not None:
            code = "too_long" if len(value) > brand.MAX_LOGO_URL_CHARS else "invalid_url"
            raise ValidationError(f"{where} {problem}", code)
        return value
    if name == "accentColor":
        if not brand.is_color(value):
            raise ValidationError(f"{where} must be a colour as #rgb or #rrggbb", "invalid_color")
        return value.lower()
    return email(value, where, "invalid_email")


def _options(raw: Any) -> OptionsChange:
    if not isinstance(raw, dict):
        raise ValidationError("meetingOptions must be an object", "invalid_type")
    known = {
        "lobbyBypassScope",
        "dialInBypass",
        "allowedPresenters",
        "allowMeetingChat",
        "entryExitAnnounced",
        "subjectTemplate",
        "recordAutomatically",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValidationError(
            f"meetingOptions: unknown field(s) {', '.join(unknown)}", "unknown_field"
        )

    def pick(name: str, kind: Any) -> Any:
        value = raw.get(name)
        return None if value is None else choice(value, f"meetingOptions.{name}", kind)

    return OptionsChange(
        lobby_bypass_scope=pick("lobbyBypassScope", LobbyBypassScope),
        dial_in_bypass=boolean(raw, "dialInBypass"),
        allowed_presenters=pick("allowedPresenters", AllowedPresenters),
        allow_meeting_chat=pick("allowMeetingChat", MeetingChatMode),
        entry_exit_announced=boolean(raw, "entryExitAnnounced"),
        subject_template=_subject_template(raw),
        record_automatically=boolean(raw, "recordAutomatically"),
    )


def _subject_template(raw: dict[str, Any]) -> str | None:
    template = text(raw, "subjectTemplate", max_length=MAX_TEMPLATE_CHARS)
    if template is not None:
        try:
            SubjectTemplate.parse(template)
        except TemplateError as problem:
            raise ValidationError(f"meetingOptions.{problem}", TemplateError.code) from problem
    return template


# JSON name -> (field of `TutorChoices` and `TutorPreferences`, the kind of its values).
_TUTOR_OPTIONS: dict[str, tuple[str, Any]] = {
    "lobbyBypassScope": ("lobby_bypass_scope", LobbyBypassScope),
    "allowedPresenters": ("allowed_presenters", AllowedPresenters),
    "allowMeetingChat": ("allow_meeting_chat", MeetingChatMode),
    "recordAutomatically": ("record_automatically", bool),
}


def _tutor_value(value: Any, where: str, kind: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(f"{where} must be true or false", "invalid_type")
        return value
    return choice(value, where, kind)


def tutor_choices(raw: Any) -> TutorChoices:
    """The tenant's whole allowance: per option, the values tutors may choose (an option not
    listed, or listed empty, is the tenant's alone); null: tutors choose nothing."""
    if raw is None:
        return TutorChoices()
    if not isinstance(raw, dict):
        raise ValidationError("tutorChoices must be an object", "invalid_type")
    unknown = sorted(set(raw) - set(_TUTOR_OPTIONS))
    if unknown:
        raise ValidationError(
            f"tutorChoices: unknown field(s) {', '.join(unknown)}", "unknown_field"
        )
    given: dict[str, frozenset[Any]] = {}
    for name, values in raw.items():
        where = f"tutorChoices.{name}"
        if values is None:
            continue
        if not isinstance(values, list) or len(values) > 8:
            raise ValidationError(f"{where} must be a list of values", "invalid_type")
        field_name, kind = _TUTOR_OPTIONS[name]
        given[field_name] = frozenset(_tutor_value(v, f"{where}[]", kind) for v in values)
    return TutorChoices(**given)


def tutor_preferences(req: func.HttpRequest) -> TutorPreferences:
    """A tutor's whole preferences: each option a value, or null (or absent) for the tenant's."""
    body = read_json(req, allowed=tuple(_TUTOR_OPTIONS), body_required=True)
    given = {
        _TUTOR_OPTIONS[name][0]: _tutor_value(value, name, _TUTOR_OPTIONS[name][1])
        for name, value in body.items()
        if value is not None
    }
    return TutorPreferences(**given)


def tutor_id(req: func.HttpRequest) -> str:
    return identifier(req.route_params.get("id"), "tutor id")


def verification(req: func.HttpRequest) -> tuple[str | None, bool]:
    body = read_json(req, allowed=("upn", "dryRun"))
    upn = body.get("upn")
    return (
        email(upn, "upn") if upn not in (None, "") else None,
        bool(boolean(body, "dryRun")),
    )
