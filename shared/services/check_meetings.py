"""The organizer check's throw-away meeting, made and removed durably.

A dry run of organizer verification creates a real meeting (the only true test of the Teams
Application Access Policy) and deletes it. The check is recorded before the createOrGet, so a
meeting whose answer was lost, or whose DELETE failed, is still known: the reconciliation timer
removes it, retrying on the meeting schedule (`RetryPolicy.rounds`), and gives up with one
ERROR line when the rounds are spent or Teams refuses for good.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from shared.domain.tenant import MicrosoftProfile
from shared.errors import AppError
from shared.graph.bodies import MeetingRequest
from shared.graph.client import CallContext, GraphMeetingsClient
from shared.graph.errors import GraphError
from shared.observability import log_event
from shared.storage.check_meetings import CheckMeeting, CheckMeetingRepository
from shared.storage.errors import NotFoundError, StorageError
from shared.storage.tenant_directory import TenantDirectory
from shared.work.policy import RetryPolicy

logger = logging.getLogger("meetings.check")

CHECK_SUBJECT = "Meetings service check (deleted automatically)"
# The meeting is placed a day ahead, for a quarter of an hour: nobody is ever invited to it.
CHECK_LEAD = timedelta(days=1)
CHECK_LENGTH = timedelta(minutes=15)
SWEEP_LIMIT = 100
# A tenant with this many check meetings still to remove makes no more until a person looks.
MAX_OUTSTANDING = 10


class CheckBacklogError(AppError):
    """Too many of the tenant's check meetings are still waiting to be removed."""

    code = "check_meetings_left"


@dataclass
class CheckSweepReport:
    due: int = 0
    removed: int = 0
    retrying: int = 0
    given_up: int = 0


class CheckMeetings:
    def __init__(
        self,
        checks: CheckMeetingRepository,
        graph: GraphMeetingsClient,
        tenants: TenantDirectory,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        *,
        grace: timedelta,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._checks = checks
        self._graph = graph
        self._tenants = tenants
        self._policy = policy
        self._clock = clock
        # The timer leaves a check alone this long: the dry run that made it is still at work.
        self._grace = grace
        self._rnd = rnd

    def open(self, tenant_id: str, organizer_id: str) -> CheckMeeting:
        """Record a check about to be made (before its createOrGet). Storage errors propagate:
        no check is made that could not be removed later. `CheckBacklogError` when the
        tenant's earlier checks are still waiting to be removed."""
        if self._checks.count_for_tenant(tenant_id) >= MAX_OUTSTANDING:
            raise CheckBacklogError(
                f"{MAX_OUTSTANDING} check meetings of this tenant are still to be removed"
            )
        now = self._clock()
        check = CheckMeeting(
            check_id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            organizer_id=organizer_id,
            created_at=now,
            next_attempt_at=now + self._grace,
        )
        self._checks.save(check)
        return check

    def request(self, check: CheckMeeting) -> MeetingRequest:
        start = check.created_at + CHECK_LEAD
        return MeetingRequest(
            external_id=check.external_id,
            subject=CHECK_SUBJECT,
            start=start,
            end=start + CHECK_LENGTH,
        )

    def nothing_made(self, check: CheckMeeting) -> None:
        """Teams refused the create with a clear answer: there is nothing to remove."""
        self._forget(check)

    def remove(self, check: CheckMeeting, profile: MicrosoftProfile) -> bool | None:
        """Delete the check's meeting now; if that fails, schedule the next attempt. True when
        Teams no longer has it, False when a retry is scheduled, None when given up."""
        ctx = CallContext(tenant_id=check.tenant_id, operation="verify_cleanup")
        try:
            meeting_id = check.meeting_id
            if meeting_id is None:
                # Made, but its answer was lost: createOrGet with its externalId finds it.
                meeting_id = self._graph.create_or_get_meeting(
                    profile, check.organizer_id, self.request(check), None, ctx
                ).id
                check = replace(check, meeting_id=meeting_id)
            if not self._graph.delete_meeting(profile, check.organizer_id, meeting_id, ctx):
                self._graph.confirm_gone(profile, check.organizer_id, meeting_id, ctx, "DELETE")
        except GraphError as error:
            return self._later(check, error)
        self._forget(check)
        return True

    def sweep(self) -> CheckSweepReport:
        """Remove the meetings of checks whose removal is due. Never raises: storage or Graph
        trouble leaves the rows for the next run."""
        report = CheckSweepReport()
        try:
            due = self._checks.list_due(self._clock(), SWEEP_LIMIT)
        except StorageError:
            logger.exception("check meetings not listed")
            return report
        report.due = len(due)
        for check in due:
            try:
                profile = self._tenants.get(check.tenant_id).microsoft
            except NotFoundError:
                profile = None
            except StorageError:
                logger.exception("tenant of check meeting %s not read", check.check_id)
                continue
            if profile is None:
                # The tenant has no Microsoft profile any more: nothing can reach the meeting.
                self._give_up(check, "teams_unavailable")
                report.given_up += 1
                continue
            try:
                removed = self.remove(check, profile)
            except Exception:
                # One check's trouble must not stop the sweep (nor the timer run).
                logger.exception("check meeting %s not removed", check.check_id)
                continue
            if removed:
                report.removed += 1
            elif removed is None:
                report.given_up += 1
            else:
                report.retrying += 1
        if report.due:
            log_event(logger, logging.INFO, "check_meetings_swept", **vars(report))
        return report

    def _later(self, check: CheckMeeting, error: GraphError) -> bool | None:
        round_ = check.attempts + 1
        if not error.retryable or round_ > len(self._policy.rounds):
            self._give_up(check, error.code)
            return None
        delay = self._policy.round_delay(round_, error.retry_after, self._rnd())
        at = self._clock() + timedelta(seconds=delay)
        log_event(
            logger,
            logging.WARNING,
            "check_meeting_removal_failed",
            tenant=check.tenant_id,
            checkId=check.check_id,
            meetingId=check.meeting_id,
            errorCode=error.code,
            round=round_,
            delaySeconds=round(delay, 1),
        )
        self._store(check.retried(at, error.code, failed=False))
        return False

    def _give_up(self, check: CheckMeeting, error_code: str) -> None:
        log_event(
            logger,
            logging.ERROR,
            "check_meeting_not_removed",
            tenant=check.tenant_id,
            checkId=check.check_id,
            externalId=check.external_id,
            meetingId=check.meeting_id,
            errorCode=error_code,
        )
        self._store(check.retried(self._clock(), error_code, failed=True))

    def _store(self, check: CheckMeeting) -> None:
        try:
            self._checks.save(check)
        except StorageError:
            # The row written before the create is still there: the timer tries again.
            logger.exception("check meeting %s not recorded", check.check_id)

    def _forget(self, check: CheckMeeting) -> None:
        try:
            self._checks.remove(check.check_id)
        except StorageError:
            # The timer will find Teams without it (404 counts as done) and forget it then.
            logger.exception("check meeting %s not forgotten", check.check_id)
