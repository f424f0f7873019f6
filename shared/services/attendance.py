"""The `attendance` kind of work: after the lesson, read Teams' attendance reports and complete
the booking with who joined, when and for how long, and the outcome (shared/domain/completion.py).

A report not published yet (Teams takes some minutes after the meeting) is a retryable failure,
retried on the kit's schedule; the last round is held back to the tenant's deadline, and a
report still missing then completes the booking with outcome `unknown`. So does a 403: the app
lacks OnlineMeetingArtifact.Read.All (or the organizer's access policy), which is logged once
per booking, naming the permission; and any other refusal that asking again cannot change (the
meeting gone, a request Graph refuses). Failures that may pass (Graph unavailable, throttled, a
credential being fixed) are retried like the missing report. A booking completed by hand,
cancelled or moved meanwhile is left alone (`completed_with`); the kit records the work once,
however often it runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shared.domain import notices
from shared.domain import work as works
from shared.domain.attendance import Attendance, AttendanceReport, LessonOutcome
from shared.domain.booking import Booking, BookingStatus
from shared.domain.completion import (
    ATTENDANCE_WORK,
    attendance_deadline,
    attendance_owed,
    attended_from,
    completed_with,
    unknown_attendance,
)
from shared.domain.mail_state import NoticeKind
from shared.domain.tenant import Tenant
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphPolicyMissingError,
)
from shared.observability import log_event
from shared.storage.tenant_directory import TenantDirectory
from shared.work.kinds import WorkFailed
from shared.work.policy import RetryPolicy
from shared.work.record import Change

# The outcomes the staff are e-mailed about (with `attendance.noShowMailTo`).
NO_SHOWS = frozenset(
    {LessonOutcome.STUDENT_NO_SHOW, LessonOutcome.TUTOR_NO_SHOW, LessonOutcome.NO_SHOW}
)

logger = logging.getLogger("meetings.attendance")

PERMISSION = "OnlineMeetingArtifact.Read.All"
REPORT_MISSING = "attendance_report_missing"
PERMISSION_MISSING = "attendance_permission_missing"
NO_MEETING = "attendance_no_meeting"
# A report not there yet is not asked for again within the same delivery: Teams publishes it
# minutes after the meeting, not seconds.
_REPORT_WAIT_SECONDS = 60.0


def attending(
    transition: Callable[[Booking], Booking], tenant: Tenant
) -> Callable[[Booking], Booking]:
    """`transition`, owing the booking's attendance when it confirms a booking with a meeting,
    asks for a meeting on a confirmed one or moves it (`attendance_owed`)."""

    def changed(booking: Booking) -> Booking:
        return attendance_owed(booking, transition(booking), tenant.attendance)

    return changed


class AttendanceCollector:
    """The handler of the `attendance` kind: a function of the booking, for `KindWorker`."""

    kind = ATTENDANCE_WORK

    def __init__(
        self,
        graph: GraphMeetingsClient,
        tenants: TenantDirectory,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
    ) -> None:
        self._graph = graph
        self._tenants = tenants
        self._policy = policy
        self._clock = clock

    def __call__(self, booking: Booking) -> Change | None:
        if booking.status is not BookingStatus.CONFIRMED:
            return None  # completed by hand, cancelled or declined: nothing to record
        tenant = self._tenants.get(booking.tenant_id, recent=True)
        meeting = booking.meeting
        if tenant.microsoft is None or not meeting.meeting_id or not meeting.organizer_id:
            return self._unknown(booking, NO_MEETING)
        ctx = CallContext(booking.tenant_id, "attendance", booking.booking_id)
        try:
            reports = self._reports(booking, tenant, ctx)
        except GraphError as error:
            return self._failed(booking, tenant, error)
        if not reports:
            return self._missing(booking, tenant)
        attendance, matched = attended_from(booking, reports, tenant.attendance, self._clock())
        if matched.ambiguous_names:
            log_event(
                logger,
                logging.WARNING,
                "attendance_ambiguous_name",
                tenant=booking.tenant_id,
                bookingId=booking.booking_id,
                # How many names, not the names: they are personal data.
                names=len(matched.ambiguous_names),
                unmatched=matched.unmatched,
            )
        return self._recorded(booking, attendance, tenant)

    def _reports(
        self, booking: Booking, tenant: Tenant, ctx: CallContext
    ) -> list[AttendanceReport]:
        assert tenant.microsoft is not None
        organizer, meeting_id = booking.meeting.organizer_id or "", booking.meeting.meeting_id or ""
        ids = self._graph.list_attendance_reports(tenant.microsoft, organizer, meeting_id, ctx)
        return [
            self._graph.get_attendance_report(tenant.microsoft, organizer, meeting_id, i, ctx)
            for i in ids
        ]

    def _failed(self, booking: Booking, tenant: Tenant, error: GraphError) -> Change:
        if isinstance(error, GraphForbiddenError):
            code = error.code if isinstance(error, GraphPolicyMissingError) else PERMISSION_MISSING
            log_event(
                logger,
                logging.ERROR,
                "attendance_forbidden",
                tenant=booking.tenant_id,
                bookingId=booking.booking_id,
                errorCode=code,
                permission=PERMISSION,
                message=(
                    f"Graph refused the attendance report: grant the app the application "
                    f"permission {PERMISSION} (with admin consent) and keep the organizer "
                    "in its application access policy. The booking completes with outcome "
                    "unknown."
                ),
            )
            return self._unknown(booking, code)
        # The meeting is gone, or the request cannot succeed: asking again will not help. A
        # credential may be fixed before the deadline, so sign-in failures are asked again.
        if isinstance(error, GraphNotFoundError) or not (
            error.retryable or isinstance(error, GraphAuthError)
        ):
            return self._unknown(booking, error.code)
        if self._last_chance(booking, tenant):
            return self._unknown(booking, error.code)
        raise WorkFailed(
            str(error),
            error.code,
            retryable=True,
            retry_after=self._retry_after(booking, tenant, error.retry_after),
        )

    def _missing(self, booking: Booking, tenant: Tenant) -> Change:
        if self._last_chance(booking, tenant):
            return self._unknown(booking, REPORT_MISSING)
        raise WorkFailed(
            "Teams has not published the meeting's attendance report yet",
            REPORT_MISSING,
            retryable=True,
            retry_after=self._retry_after(booking, tenant, _REPORT_WAIT_SECONDS),
        )

    def _last_chance(self, booking: Booking, tenant: Tenant) -> bool:
        """This attempt's failure would end the work: the deadline has come, or the kit's
        rounds are spent."""
        if self._clock() >= attendance_deadline(booking, tenant.attendance):
            return True
        state = works.state_of(booking.work, ATTENDANCE_WORK)
        return state is not None and state.rounds >= len(self._policy.rounds)

    def _retry_after(self, booking: Booking, tenant: Tenant, wait: float | None) -> float | None:
        """Not before `wait`; and the kit's last round held back to the deadline, so that a
        report published late is still read."""
        state = works.state_of(booking.work, ATTENDANCE_WORK)
        rounds = 0 if state is None else state.rounds
        if rounds + 1 < len(self._policy.rounds):
            return wait
        until = (attendance_deadline(booking, tenant.attendance) - self._clock()).total_seconds()
        return max(wait or 0.0, until)

    def _unknown(self, booking: Booking, code: str) -> Change:
        log_event(
            logger,
            logging.WARNING,
            "attendance_unknown",
            tenant=booking.tenant_id,
            bookingId=booking.booking_id,
            errorCode=code,
        )
        return self._recorded(booking, unknown_attendance(self._clock(), code))

    def _recorded(
        self, booking: Booking, attendance: Attendance, tenant: Tenant | None = None
    ) -> Change:
        log_event(
            logger,
            logging.INFO,
            "attendance_recorded",
            tenant=booking.tenant_id,
            bookingId=booking.booking_id,
            outcome=attendance.outcome.value,
            unmatched=attendance.unmatched,
            errorCode=attendance.error_code,
        )
        end = booking.end
        # A no-show is e-mailed to the tenant's staff address, in the save that records it.
        staff = tenant.attendance.no_show_mail_to if tenant is not None else None
        now = self._clock()

        def recorded(b: Booking) -> Booking:
            done = completed_with(b, attendance, end=end)
            if done is b or not staff or attendance.outcome not in NO_SHOWS:
                return done
            return notices.requested(done, NoticeKind.NO_SHOW, now=now, to=(staff.lower(),))

        return recorded
