"""The booking state machine of SPEC §2 and what each step does to the meeting state."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain import booking as lifecycle
from shared.domain.booking import (
    BookingStatus,
    IllegalTransitionError,
    MeetingState,
    MeetingStatus,
)
from tests.builders import T0, a_booking

NOW = T0 - timedelta(days=1)
S = BookingStatus


def created_meeting(booking):
    return lifecycle.meeting_created(
        booking, meeting_id="m1", join_url="https://teams/x", organizer_id="o1", now=NOW
    )


@pytest.mark.parametrize(
    ("action", "allowed_from", "result"),
    [
        (lambda b: lifecycle.approve(b, now=NOW, with_meeting=False), {S.PENDING}, S.CONFIRMED),
        (lambda b: lifecycle.decline(b, now=NOW), {S.PENDING}, S.DECLINED),
        (lambda b: lifecycle.cancel(b, now=NOW), {S.PENDING, S.CONFIRMED}, S.CANCELLED),
        (lambda b: lifecycle.complete(b, now=NOW), {S.CONFIRMED}, S.COMPLETED),
        (
            lambda b: lifecycle.reschedule(b, start=T0, end=T0 + timedelta(hours=2), now=NOW),
            {S.PENDING, S.CONFIRMED},
            None,
        ),
    ],
)
def test_transitions_allowed_and_refused(action, allowed_from, result):
    for status in BookingStatus:
        booking = a_booking(status=status)
        if status in allowed_from:
            after = action(booking)
            assert after.status is (result or status)
        else:
            with pytest.raises(IllegalTransitionError, match=status.value):
                action(booking)


def test_approval_with_a_meeting_makes_its_creation_outstanding():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True, assignee_id="tutor-9")

    assert approved.meeting.wanted is True
    assert approved.meeting.status is MeetingStatus.PENDING
    assert approved.assignee_id == "tutor-9"
    assert approved.needs_reconciliation


def test_approval_without_a_meeting_leaves_nothing_to_do():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=False)

    assert approved.meeting.status is MeetingStatus.NONE
    assert not approved.needs_reconciliation


def test_a_created_meeting_in_step_needs_nothing_and_a_reschedule_makes_drift():
    booking = created_meeting(lifecycle.approve(a_booking(), now=NOW, with_meeting=True))
    assert not booking.needs_reconciliation

    moved = lifecycle.reschedule(
        booking, start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1), now=NOW
    )

    assert moved.needs_reconciliation
    assert not lifecycle.meeting_synced(moved, now=NOW).needs_reconciliation


def test_cancelling_with_a_meeting_leaves_its_deletion_outstanding():
    booking = created_meeting(lifecycle.approve(a_booking(), now=NOW, with_meeting=True))

    cancelled = lifecycle.cancel(booking, now=NOW, reason="ill")

    assert cancelled.status_reason == "ill"
    assert cancelled.meeting.status is MeetingStatus.CREATED
    assert cancelled.needs_reconciliation
    assert not lifecycle.meeting_deleted(cancelled, now=NOW).needs_reconciliation


def test_cancelling_before_any_meeting_exists_drops_the_pending_creation():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    cancelled = lifecycle.cancel(approved, now=NOW)

    assert cancelled.meeting.status is MeetingStatus.NONE
    assert not cancelled.needs_reconciliation


def test_cancelling_after_an_unanswered_create_leaves_its_removal_outstanding():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)
    timed_out = lifecycle.meeting_attempt_failed(
        approved, error_code="graph_timeout", retryable=True, unanswered=True, now=NOW
    )

    cancelled = lifecycle.cancel(timed_out, now=NOW)

    assert cancelled.meeting.create_in_doubt
    assert (cancelled.meeting.status, cancelled.meeting.wanted) == (MeetingStatus.PENDING, False)
    assert cancelled.needs_reconciliation
    removed = lifecycle.meeting_deleted(cancelled, now=NOW)
    assert not removed.meeting.create_in_doubt
    assert not removed.needs_reconciliation


def test_a_refused_create_leaves_no_doubt_and_a_success_ends_it():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)
    throttled = lifecycle.meeting_attempt_failed(
        approved, error_code="graph_throttled", retryable=True, now=NOW
    )
    unanswered = lifecycle.meeting_attempt_failed(
        approved, error_code="graph_unavailable", retryable=True, unanswered=True, now=NOW
    )

    assert lifecycle.cancel(throttled, now=NOW).meeting.status is MeetingStatus.NONE
    assert not created_meeting(unanswered).meeting.create_in_doubt


def test_a_failed_create_stays_pending_when_retryable_and_fails_when_not():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    retry = lifecycle.meeting_attempt_failed(
        approved, error_code="graph_throttled", retryable=True, now=NOW
    )
    final = lifecycle.meeting_attempt_failed(
        approved, error_code="graph_policy_missing", retryable=False, now=NOW
    )

    assert (retry.meeting.status, retry.meeting.attempts) == (MeetingStatus.PENDING, 1)
    assert (final.meeting.status, final.meeting.last_error_code) == (
        MeetingStatus.FAILED,
        "graph_policy_missing",
    )


def test_a_new_meeting_after_a_deleted_one_uses_a_new_external_id():
    booking = replace(
        a_booking(status=BookingStatus.CONFIRMED, booking_id="b1", tenant_id="t"),
        meeting=MeetingState(wanted=True, status=MeetingStatus.DELETED, meeting_id="old"),
    )

    requested = lifecycle.meeting_requested(booking, now=NOW)

    assert requested.external_id == "t:b1:2"
    assert requested.meeting.meeting_id is None
    assert requested.meeting.status is MeetingStatus.PENDING


def test_rescheduling_to_an_end_before_the_start_is_refused():
    with pytest.raises(ValueError, match="after"):
        lifecycle.reschedule(a_booking(), start=T0, end=T0, now=NOW)
