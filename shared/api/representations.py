"""What the API returns: bookings, settings and checks as camelCase JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.auth.principal import Principal
from shared.domain.attendance import Attendance
from shared.domain.booking import Booking, MeetingStatus
from shared.domain.branding import Branding
from shared.domain.payment import IntentPayment, PaymentState
from shared.domain.tenant import Capability, MeetingOptions, TeamsHealth, Tenant, TutorChoices
from shared.services.teams_settings import Verification
from shared.services.tutor_preferences import TutorMeetingPreferences


def _time(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def booking_json(
    booking: Booking, caller: Principal, reminder_offsets: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """The booking as the API shows it; `reminder_offsets`: the tenant's, shown with its
    reminders (left out when not given)."""
    meeting = booking.meeting
    # The link is shown while Teams holds the meeting the booking wants, even when its times
    # are still being brought in step (status `pending`): the link itself stays the same. A
    # meeting on its way out (the booking was cancelled) is not offered to anyone.
    shown = meeting.in_teams and meeting.wanted and booking.live
    join_url = meeting.join_url if shown else None
    body: dict[str, Any] = {
        "id": booking.booking_id,
        "tenantId": booking.tenant_id,
        "status": booking.status.value,
        "subject": booking.subject,
        "level": booking.level,
        "startDateTime": _time(booking.start),
        "endDateTime": _time(booking.end),
        "timeZone": booking.time_zone,
        "participants": [
            {
                "userId": p.user_id,
                "role": p.role.value,
                "email": p.email,
                "displayName": p.display_name,
                "locale": p.locale,
            }
            for p in booking.participants
        ],
        "assigneeId": booking.assignee_id,
        "statusReason": booking.status_reason,
        "createdBy": booking.created_by,
        "createdAt": _time(booking.created_at),
        "updatedAt": _time(booking.updated_at),
        "meetingLink": join_url,
        "meeting": {
            "status": meeting.status.value,
            "wanted": meeting.wanted,
            "provider": meeting.provider,
            "joinUrl": join_url,
            "meetingId": meeting.meeting_id if join_url else None,
            "attempts": meeting.attempts,
            "lastErrorCode": meeting.last_error_code,
            "nextAttemptAt": _time(meeting.next_attempt_at),
            "changedAt": _time(meeting.changed_at),
        },
        "payment": payment_json(booking.payment),
        "mail": {
            "status": booking.mail.status.value,
            "pending": len(booking.mail.pending),
            "sent": booking.mail.sent,
            "failed": booking.mail.failed,
            "lastErrorCode": booking.mail.last_error_code,
            "nextAttemptAt": _time(booking.mail.next_attempt_at()),
            "lastSentAt": _time(booking.mail.last_sent_at),
        },
        # The reminders sent before the session (the tenant's `reminderOffsets`), newest last.
        "reminders": {
            **({} if reminder_offsets is None else {"offsets": list(reminder_offsets)}),
            "sent": [
                {
                    "offsetMinutes": r.offset_minutes,
                    "forStart": _time(r.for_start),
                    "at": _time(r.at),
                    "current": r.for_start == booking.start,
                }
                for r in booking.reminders.sent
            ],
        },
        "outcome": booking.attendance.outcome.value if booking.attendance else None,
        "attendance": attendance_json(booking.attendance),
    }
    if caller.is_tenant_wide:
        body["internalNotes"] = booking.internal_notes
    return body


def attendance_json(attendance: Attendance | None) -> dict[str, Any] | None:
    """What the booking recorded of its lesson; None until it is completed."""
    if attendance is None:
        return None
    return {
        "outcome": attendance.outcome.value,
        "source": attendance.source.value,
        "recordedAt": _time(attendance.recorded_at),
        "participants": [
            {
                "userId": p.user_id,
                "joined": p.joined,
                "firstJoin": _time(p.first_join),
                "lastLeave": _time(p.last_leave),
                "totalSeconds": p.total_seconds,
            }
            for p in attendance.participants
        ],
        "unmatched": attendance.unmatched,
        "errorCode": attendance.error_code,
    }


def payment_json(payment: PaymentState) -> dict[str, Any]:
    first = payment.first
    return {
        "status": payment.status.value,
        "paymentIntentId": (first.intent_id or None) if first else None,
        "amount": payment.amount,
        "currency": payment.currency,
        "amountRefunded": payment.amount_refunded,
        "paidAt": _time(payment.paid_at),
        "refundedAt": _time(payment.refunded_at),
        "lastFailureCode": payment.failure_code,
        "lastFailureMessage": payment.failure_message,
        "intents": [
            {
                "paymentIntentId": i.intent_id or None,
                "status": _intent_status(i),
                "amount": i.amount if i.amount is not None else i.charged,
                "amountRefunded": i.amount_refunded,
            }
            for i in payment.intents
        ],
    }


def _intent_status(intent: IntentPayment) -> str:
    if intent.refunded_at is not None:
        return "refunded"
    if intent.paid_at is None:
        return "unknown"  # only a partial refund seen so far
    return "partially_refunded" if intent.amount_refunded else "paid"


def action_json(
    booking: Booking,
    caller: Principal,
    warning: str | None,
    reminder_offsets: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"booking": booking_json(booking, caller, reminder_offsets)}
    if warning:
        body["teamsMeetingWarning"] = warning
    return body


def generation_json(booking: Booking) -> tuple[dict[str, Any], int]:
    """Seed 000's answer to "generate meeting link": 200 with the link, or 202 while the
    meeting is still being made (another request or the queue holds the work)."""
    meeting = booking.meeting
    if meeting.status is MeetingStatus.CREATED:
        return {
            "message": "Teams meeting generated successfully",
            "meetingLink": meeting.join_url,
            "meetingId": meeting.meeting_id,
        }, 200
    return {
        "message": "The Teams meeting is being generated; the link will be on the booking shortly",
        "meetingLink": None,
        "meetingId": None,
    }, 202


def capability_json(capability: Capability) -> dict[str, Any]:
    body: dict[str, Any] = {"available": capability.available}
    if capability.reason:
        body["reason"] = capability.reason.value
    return body


def options_json(options: MeetingOptions) -> dict[str, Any]:
    return {
        "lobbyBypassScope": options.lobby_bypass_scope.value,
        "dialInBypass": options.dial_in_bypass,
        "allowedPresenters": options.allowed_presenters.value,
        "allowMeetingChat": options.allow_meeting_chat.value,
        "entryExitAnnounced": options.entry_exit_announced,
        "subjectTemplate": options.subject_template,
        "recordAutomatically": options.record_automatically,
    }


def tutor_choices_json(choices: TutorChoices) -> dict[str, list[Any]]:
    """Per option, the values tutors may choose (an option absent: the tenant's alone)."""
    listed: dict[str, list[Any]] = {
        "lobbyBypassScope": sorted(v.value for v in choices.lobby_bypass_scope),
        "allowedPresenters": sorted(v.value for v in choices.allowed_presenters),
        "allowMeetingChat": sorted(v.value for v in choices.allow_meeting_chat),
        "recordAutomatically": sorted(choices.record_automatically),
    }
    return {name: values for name, values in listed.items() if values}


def tutor_preferences_json(view: TutorMeetingPreferences) -> dict[str, Any]:
    p = view.preferences
    return {
        "tutorId": view.tutor_id,
        "preferences": {
            "lobbyBypassScope": p.lobby_bypass_scope.value if p.lobby_bypass_scope else None,
            "allowedPresenters": p.allowed_presenters.value if p.allowed_presenters else None,
            "allowMeetingChat": p.allow_meeting_chat.value if p.allow_meeting_chat else None,
            "recordAutomatically": p.record_automatically,
        },
        "allowed": tutor_choices_json(view.allowed),
        "effective": options_json(view.effective),
    }


def settings_json(tenant: Tenant) -> dict[str, Any]:
    return {
        "tenantId": tenant.tenant_id,
        "installStatus": tenant.install_status.value,
        "configured": tenant.microsoft is not None,
        "organizerUpn": tenant.organizer_upn,
        "organizerObjectId": tenant.organizer_object_id,
        "meetingOptions": options_json(tenant.meeting_options),
        "participantsCanReschedule": tenant.participants_can_reschedule,
        "attendance": {
            "minimumMinutes": tenant.attendance.minimum_minutes,
            "graceMinutes": tenant.attendance.grace_minutes,
            "deadlineHours": tenant.attendance.deadline_hours,
            "noShowMailTo": tenant.attendance.no_show_mail_to,
        },
        "tutorChoices": tutor_choices_json(tenant.tutor_choices),
        "defaultLocale": tenant.locale,
        "reminderOffsets": list(tenant.reminder_offsets),
        "capability": capability_json(tenant.meeting_capability()),
        "teamsHealth": health_json(tenant.teams_health),
        "branding": branding_json(tenant.branding),
    }


def branding_json(branding: Branding) -> dict[str, Any]:
    return {
        "displayName": branding.display_name,
        "logoUrl": branding.logo_url,
        "accentColor": branding.accent_color,
        "replyTo": branding.reply_to,
        "contactLine": branding.contact_line,
        "footerText": branding.footer_text,
    }


def health_json(health: TeamsHealth | None) -> dict[str, Any] | None:
    """The credential check's last verdict (None: not checked yet)."""
    if health is None:
        return None
    return {
        "state": health.state.value,
        "reason": health.reason.value if health.reason else None,
        "since": _time(health.since),
        "checkedAt": _time(health.checked_at),
    }


def verification_json(result: Verification) -> dict[str, Any]:
    body: dict[str, Any] = {"valid": result.valid, "dryRun": result.dry_run}
    for name, value in (
        ("displayName", result.display_name),
        ("objectId", result.object_id),
        ("reason", result.reason),
        ("checkMeetingRemoved", result.check_removed),
    ):
        if value is not None:
            body[name] = value
    return body
