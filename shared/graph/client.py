"""The one Graph module the functions share: users, online meetings and mail.

Each method is a single attempt with a timeout; retry policy belongs to the caller, which knows
whether a user is waiting. Every call logs one structured line (SPEC §9) and raises only
`GraphError` subclasses.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared import telemetry
from shared.domain.attendance import AttendanceInterval, AttendanceRecord, AttendanceReport
from shared.domain.tenant import MeetingOptions, MicrosoftProfile
from shared.graph.bodies import (
    EVOLVED_LOBBY_SCOPES,
    Attendee,
    MeetingRequest,
    create_or_get_body,
    options_body,
    options_match,
    reschedule_body,
)
from shared.graph.errors import (
    GraphError,
    GraphInconsistentError,
    GraphInvalidRequestError,
    GraphNotFoundError,
    GraphTimeoutError,
    GraphTransientError,
    classify_response,
)
from shared.graph.session import deadline
from shared.observability import log_event

if TYPE_CHECKING:
    import requests

    from shared.graph.tokens import TokenSource

logger = logging.getLogger("meetings.graph")


@dataclass(frozen=True)
class CallContext:
    """Who a call is for, so its log line can be traced to a booking."""

    tenant_id: str
    operation: str
    booking_id: str | None = None
    attempt: int = 1
    # A shorter timeout for this call than the client's, e.g. while a user waits.
    timeout: float | None = None


@dataclass(frozen=True)
class GraphUser:
    id: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None


@dataclass(frozen=True)
class OnlineMeeting:
    id: str
    join_url: str
    start: datetime | None
    end: datetime | None
    subject: str | None
    external_id: str | None
    created: bool = False
    """True when this call made the meeting (createOrGet answered 201)."""
    options_applied: bool = False
    """The meeting carries the options the caller asked about."""


class GraphMeetingsClient:
    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenSource,
        http: requests.Session,
        timeout: float,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._http = http
        self._timeout = timeout

    # -- users ---------------------------------------------------------------------------------

    def get_user(self, profile: MicrosoftProfile, user: str, ctx: CallContext) -> GraphUser:
        """`GET /users/{upn or id}`: resolves an organizer UPN to its object id."""
        _, body = self._call(
            "GET",
            _user_path(user),
            profile,
            ctx,
            params={"$select": "id,displayName,userPrincipalName,mail"},
        )
        return GraphUser(
            id=str(body["id"]),
            display_name=body.get("displayName"),
            user_principal_name=body.get("userPrincipalName"),
            mail=body.get("mail"),
        )

    # -- meetings ------------------------------------------------------------------------------

    def create_or_get_meeting(
        self,
        profile: MicrosoftProfile,
        organizer_id: str,
        request: MeetingRequest,
        options: MeetingOptions | None,
        ctx: CallContext,
        *,
        apply_options: bool = True,
    ) -> OnlineMeeting:
        """One meeting per externalId, however often called; then make its options right.

        createOrGet cannot carry options, and returns an existing meeting unchanged, so the
        options go in a PATCH whenever the meeting does not have them yet (after a create, or
        when an earlier PATCH was interrupted). `apply_options=False` leaves that PATCH to the
        caller (the answer says whether the options are on it); `options=None` only wants the
        meeting's id, e.g. to delete it.
        """
        status, body = self._call(
            "POST",
            f"{_user_path(organizer_id)}/onlineMeetings/createOrGet",
            profile,
            ctx,
            json=create_or_get_body(request),
            options=options,
        )
        created = status == 201
        attendees = request.attendees
        if apply_options and options is not None and not options_match(body, options, attendees):
            _, body = self._call(
                "PATCH",
                _meeting_path(organizer_id, str(body["id"])),
                profile,
                ctx,
                json=options_body(options, attendees),
                options=options,
            )
        return _meeting(body, created=created, options=options, attendees=attendees)

    def get_meeting(
        self,
        profile: MicrosoftProfile,
        organizer_id: str,
        meeting_id: str,
        ctx: CallContext,
        options: MeetingOptions | None = None,
    ) -> OnlineMeeting:
        """The meeting as Teams holds it; with `options`, whether it carries them."""
        _, body = self._call(
            "GET", _meeting_path(organizer_id, meeting_id), profile, ctx, options=options
        )
        return _meeting(body, options=options)

    def update_meeting(
        self,
        profile: MicrosoftProfile,
        organizer_id: str,
        meeting_id: str,
        *,
        start: datetime,
        end: datetime,
        subject: str | None,
        ctx: CallContext,
        options: MeetingOptions | None = None,
        attendees: Sequence[Attendee] = (),
    ) -> OnlineMeeting:
        """PATCH the times (and subject, and with `options` the meeting options, with the
        `attendees` and their roles where presenters are by role): same meeting, same join
        URL."""
        body = reschedule_body(start, end, subject)
        if options is not None:
            body.update(options_body(options, attendees))
        _, answer = self._call(
            "PATCH",
            _meeting_path(organizer_id, meeting_id),
            profile,
            ctx,
            json=body,
            options=options,
        )
        # Graph accepted the options with the PATCH; its answer need not echo every one.
        return replace(_meeting(answer), options_applied=options is not None)

    def confirm_gone(
        self,
        profile: MicrosoftProfile,
        organizer_id: str,
        meeting_id: str,
        ctx: CallContext,
        method: str,
    ) -> None:
        """A 404 to `method` is believed only once a GET agrees: a meeting declared gone is made
        anew (or its booking left alone), so one wrong 404 would leave a live meeting behind.
        `GraphInconsistentError` (retryable) when the GET still finds it; a failing GET raises
        its own error. (After a GET's 404, this second GET is the confirmation.)"""
        try:
            self.get_meeting(profile, organizer_id, meeting_id, ctx)
        except GraphNotFoundError:
            return
        raise GraphInconsistentError(
            f"Graph answered 404 to the {method} of a meeting a GET still finds", status=404
        )

    def delete_meeting(
        self, profile: MicrosoftProfile, organizer_id: str, meeting_id: str, ctx: CallContext
    ) -> bool:
        """DELETE the meeting. Returns False when it was already gone (404 counts as done)."""
        try:
            self._call("DELETE", _meeting_path(organizer_id, meeting_id), profile, ctx)
        except GraphNotFoundError:
            return False
        return True

    # -- attendance ----------------------------------------------------------------------------

    def list_attendance_reports(
        self, profile: MicrosoftProfile, organizer_id: str, meeting_id: str, ctx: CallContext
    ) -> list[str]:
        """`GET .../onlineMeetings/{id}/attendanceReports`: the ids of the meeting's attendance
        reports (Graph lists the 50 most recent, one per session). Needs the application
        permission OnlineMeetingArtifact.Read.All and the organizer's access policy."""
        _, body = self._call(
            "GET",
            f"{_meeting_path(organizer_id, meeting_id)}/attendanceReports",
            profile,
            ctx,
        )
        reports = body.get("value")
        if not isinstance(reports, list):
            raise GraphInvalidRequestError("Graph listed attendance reports without a value")
        return [str(r["id"]) for r in reports if isinstance(r, dict) and r.get("id")]

    def get_attendance_report(
        self,
        profile: MicrosoftProfile,
        organizer_id: str,
        meeting_id: str,
        report_id: str,
        ctx: CallContext,
    ) -> AttendanceReport:
        """`GET .../attendanceReports/{reportId}?$expand=attendanceRecords`: one report with
        its attendance records."""
        _, body = self._call(
            "GET",
            f"{_meeting_path(organizer_id, meeting_id)}/attendanceReports/{_segment(report_id)}",
            profile,
            ctx,
            params={"$expand": "attendanceRecords"},
        )
        return _report(body, report_id)

    # -- mail ----------------------------------------------------------------------------------

    def send_mail(
        self, profile: MicrosoftProfile, sender: str, message: dict[str, Any], ctx: CallContext
    ) -> None:
        """`POST /users/{sender}/sendMail` (202); `message` is Graph's message resource."""
        self._call(
            "POST",
            f"{_user_path(sender)}/sendMail",
            profile,
            ctx,
            json={"message": message, "saveToSentItems": True},
        )

    def send_mime_mail(
        self, profile: MicrosoftProfile, sender: str, mime: bytes, ctx: CallContext
    ) -> None:
        """`POST /users/{sender}/sendMail` in MIME form (202): the body is the base64 of the
        message's bytes with `Content-Type: text/plain`, as Graph documents; it goes to Sent
        Items as well."""
        self._call(
            "POST",
            f"/users/{_segment(sender)}/sendMail",
            profile,
            ctx,
            content=base64.b64encode(mime),
        )

    def deadline(self, seconds: float | None) -> AbstractContextManager[None]:
        """Every call (sign-in included) the current thread makes ends within `seconds`."""
        return deadline(seconds)

    # -- the wire ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        profile: MicrosoftProfile,
        ctx: CallContext,
        *,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        options: MeetingOptions | None = None,
    ) -> tuple[int, dict[str, Any]]:
        # requests is imported on first call, not when the function app is indexed.
        import requests

        started = time.perf_counter()
        status: int | None = None
        timeout = min(self._timeout, ctx.timeout) if ctx.timeout else self._timeout
        try:
            headers = {"Authorization": f"Bearer {self._tokens.token(profile)}"}
            if options is not None and options.lobby_bypass_scope in EVOLVED_LOBBY_SCOPES:
                headers["Prefer"] = "include-unknown-enum-members"
            if content is not None:
                headers["Content-Type"] = "text/plain"
            try:
                response = self._http.request(
                    method,
                    self._base_url + path,
                    json=json,
                    data=content,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                )
            except requests.ConnectTimeout as exc:
                raise GraphTimeoutError(f"{method} could not connect in time", sent=False) from exc
            except requests.Timeout as exc:
                raise GraphTimeoutError(f"{method} timed out after {timeout:g}s") from exc
            except requests.ConnectionError as exc:
                # A refused or reset connection; whether the request got through is unknown.
                raise GraphTransientError(f"{method} could not reach Graph") from exc
            except requests.RequestException as exc:
                raise GraphTransientError(f"{method} could not reach Graph") from exc
            status = response.status_code
            body = _json_or_empty(response)
            if status >= 400:
                raise classify_response(status, response.headers, body, operation=ctx.operation)
        except GraphError as error:
            self._log(logging.WARNING, method, path, ctx, started, error.status, error)
            raise
        self._log(logging.INFO, method, path, ctx, started, status, None)
        return response.status_code, body

    @staticmethod
    def _log(
        level: int,
        method: str,
        path: str,
        ctx: CallContext,
        started: float,
        status: int | None,
        error: GraphError | None,
    ) -> None:
        telemetry.count(
            "graph_calls",
            operation=ctx.operation,
            status=str(status) if status is not None else "none",
            tenant=ctx.tenant_id,
        )
        log_event(
            logger,
            level,
            "graph_call",
            tenant=ctx.tenant_id,
            bookingId=ctx.booking_id,
            operation=ctx.operation,
            attempt=ctx.attempt,
            method=method,
            # The path names ids only (organizer object id, meeting id): no join URL.
            path=path,
            latencyMs=round((time.perf_counter() - started) * 1000, 1),
            graphStatus=status,
            errorCode=error.code if error else None,
            graphErrorCode=error.graph_code if error else None,
            retryAfter=error.retry_after if error else None,
            requestId=error.request_id if error else None,
        )


def _segment(value: str) -> str:
    if not value:
        raise GraphInvalidRequestError("a user or meeting id is required")
    return quote(value, safe="@")


def _user_path(user: str) -> str:
    """`/users/{id or upn}`, or `/users('{upn}')` for a UPN that starts with `$`.

    Graph refuses `/users/$x@y.com` with 400, since OData reserves a leading `$` for system
    query options; its "Get user" reference (learn.microsoft.com/graph/api/user-get, tip
    under "HTTP request") says to drop the slash and quote the key: `/users('$x@y.com')`.
    Inside the OData string literal a single quote is doubled.
    """
    if not user.startswith("$"):
        return f"/users/{_segment(user)}"
    return "/users('" + quote(user.replace("'", "''"), safe="@$'") + "')"


def _meeting_path(organizer_id: str, meeting_id: str) -> str:
    return f"{_user_path(organizer_id)}/onlineMeetings/{_segment(meeting_id)}"


def _json_or_empty(response: requests.Response) -> dict[str, Any]:
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # Graph writes up to seven fractional digits; Python reads six.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _report(body: dict[str, Any], report_id: str) -> AttendanceReport:
    records = body.get("attendanceRecords") or []
    if not isinstance(records, list):
        raise GraphInvalidRequestError("Graph returned attendance records that are not a list")
    return AttendanceReport(
        report_id=str(body.get("id") or report_id),
        records=tuple(_record(r) for r in records if isinstance(r, dict)),
        meeting_start=_parse_time(body.get("meetingStartDateTime")),
        meeting_end=_parse_time(body.get("meetingEndDateTime")),
    )


def _record(body: dict[str, Any]) -> AttendanceRecord:
    identity = body.get("identity")
    identity = identity if isinstance(identity, dict) else {}
    intervals = []
    for raw in body.get("attendanceIntervals") or []:
        join = _parse_time(raw.get("joinDateTime")) if isinstance(raw, dict) else None
        if join is not None:
            intervals.append(AttendanceInterval(join, _parse_time(raw.get("leaveDateTime"))))
    seconds = body.get("totalAttendanceInSeconds")
    return AttendanceRecord(
        email=str(body["emailAddress"]) if body.get("emailAddress") else None,
        display_name=str(identity["displayName"]) if identity.get("displayName") else None,
        role=str(body["role"]) if body.get("role") else None,
        total_seconds=seconds if isinstance(seconds, int) and not isinstance(seconds, bool) else 0,
        intervals=tuple(intervals),
    )


def _meeting(
    body: dict[str, Any],
    *,
    created: bool = False,
    options: MeetingOptions | None = None,
    attendees: Sequence[Attendee] = (),
) -> OnlineMeeting:
    meeting_id = body.get("id")
    join_url = body.get("joinWebUrl") or body.get("joinUrl")
    if not meeting_id or not join_url:
        raise GraphInvalidRequestError("Graph returned a meeting without id or join URL")
    return OnlineMeeting(
        id=str(meeting_id),
        join_url=str(join_url),
        start=_parse_time(body.get("startDateTime")),
        end=_parse_time(body.get("endDateTime")),
        subject=body.get("subject"),
        external_id=body.get("externalId"),
        created=created,
        options_applied=options is not None and options_match(body, options, attendees),
    )
