"""The booking state machine of SPEC §2 and what each step does to the meeting state."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain import booking as lifecycle
from shared.domain import convergence as facts
from shared.domain.booking import (
    BookingStatus,
    IllegalTransitionError,
    MeetingState,
    MeetingStatus,
    Step,
)
from shared.domain.convergence import Sighting
from tests.builders import T0, a_booking

NOW = T0 - timedelta(days=1)
S = BookingStatus


def created_meeting(booking):
    """The booking once Teams made its meeting at the booking's times."""
    held = facts.claimed(booking, "w1", NOW + timedelta(minutes=1))
    sighting = Sighting("m1", "https://teams/x", "o1", booking.start, booking.end, True)
    return facts.seen(held, held.meeting.generation, sighting, "w1", NOW)


def failed_create(booking, code, *, retryable, unanswered=False):
    held = facts.claimed(booking, "w1", NOW + timedelta(minutes=1))
    return facts.attempt_failed(
        held,
        step=Step.CREATE,
        work=facts.Work.of(held),
        error_code=code,
        retryable=retryable,
        unanswered=unanswered,
        doubt_before=booking.meeting.create_in_doubt,
        token="w1",
        now=NOW,
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
    assert booking.meeting.status is MeetingStatus.CREATED
    assert not booking.needs_reconciliation

    moved = lifecycle.reschedule(
        booking, start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1), now=NOW
    )

    assert moved.next_step is Step.UPDATE
    assert moved.meeting.status is MeetingStatus.PENDING  # never `created` while Teams differs
    assert moved.needs_reconciliation
    patched = Sighting("m1", "https://teams/x", "o1", moved.start, moved.end, True)
    assert not facts.seen(moved, 1, patched, "w1", NOW).needs_reconciliation


def test_cancelling_with_a_meeting_leaves_its_deletion_outstanding():
    booking = created_meeting(lifecycle.approve(a_booking(), now=NOW, with_meeting=True))

    cancelled = lifecycle.cancel(booking, now=NOW, reason="ill")

    assert cancelled.status_reason == "ill"
    assert cancelled.next_step is Step.DELETE
    assert cancelled.meeting.status is MeetingStatus.PENDING
    removed = facts.gone(cancelled, 1, "m1", "w1", NOW)
    assert removed.meeting.status is MeetingStatus.DELETED
    assert not removed.needs_reconciliation


def test_cancelling_before_any_meeting_exists_drops_the_pending_creation():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    cancelled = lifecycle.cancel(approved, now=NOW)

    assert cancelled.meeting.status is MeetingStatus.NONE
    assert not cancelled.needs_reconciliation


def test_cancelling_after_an_unanswered_create_leaves_its_removal_outstanding():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)
    timed_out = failed_create(approved, "graph_timeout", retryable=True, unanswered=True)

    cancelled = lifecycle.cancel(timed_out, now=NOW)

    assert cancelled.meeting.create_in_doubt
    assert cancelled.next_step is Step.DELETE
    assert (cancelled.meeting.status, cancelled.meeting.wanted) == (MeetingStatus.PENDING, False)
    removed = facts.gone(cancelled, 1, "found-by-external-id", "w1", NOW)
    assert not removed.meeting.create_in_doubt
    assert removed.meeting.status is MeetingStatus.DELETED
    assert not removed.needs_reconciliation


def test_a_create_in_flight_is_in_doubt_until_answered():
    # The claim is the write-ahead record: a worker that dies mid-create leaves a doubt, which
    # a cancellation resolves by finding the meeting rather than forgetting it.
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    held = facts.claimed(approved, "w1", NOW + timedelta(minutes=1))

    assert held.meeting.create_in_doubt
    assert lifecycle.cancel(held, now=NOW).next_step is Step.DELETE


def test_a_refused_create_leaves_no_doubt_and_a_success_ends_it():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)
    throttled = failed_create(approved, "graph_throttled", retryable=True)
    unanswered = failed_create(approved, "graph_unavailable", retryable=True, unanswered=True)

    assert not throttled.meeting.create_in_doubt
    assert lifecycle.cancel(throttled, now=NOW).meeting.status is MeetingStatus.NONE
    assert unanswered.meeting.create_in_doubt
    assert not created_meeting(unanswered).meeting.create_in_doubt
    # a clear refusal after an unanswered attempt does not clear the earlier doubt
    assert failed_create(unanswered, "graph_throttled", retryable=True).meeting.create_in_doubt


def test_a_failed_create_stays_pending_when_retryable_and_fails_when_not():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    retry = failed_create(approved, "graph_throttled", retryable=True)
    final = failed_create(approved, "graph_policy_missing", retryable=False)

    assert (retry.meeting.status, retry.meeting.attempts) == (MeetingStatus.PENDING, 1)
    assert retry.needs_reconciliation
    assert (final.meeting.status, final.meeting.last_error_code) == (
        MeetingStatus.FAILED,
        "graph_policy_missing",
    )
    assert not final.needs_reconciliation


def test_asking_again_after_a_failure_starts_the_work_afresh():
    final = failed_create(
        lifecycle.approve(a_booking(), now=NOW, with_meeting=True),
        "graph_policy_missing",
        retryable=False,
    )

    again = lifecycle.meeting_requested(final, now=NOW)

    assert (again.meeting.status, again.meeting.attempts, again.meeting.failed) == (
        MeetingStatus.PENDING,
        0,
        False,
    )
    assert again.needs_reconciliation


def test_a_retry_restarts_the_outstanding_step_of_a_failed_meeting_and_only_that():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)
    final = failed_create(approved, "graph_policy_missing", retryable=False)
    cancelled = lifecycle.cancel(created_meeting(approved), now=NOW)

    again = lifecycle.meeting_retried(final, now=NOW)
    removal = lifecycle.meeting_retried(cancelled, now=NOW)

    assert (again.next_step, again.meeting.status, again.meeting.attempts) == (
        Step.CREATE,
        MeetingStatus.PENDING,
        0,
    )
    assert again.needs_reconciliation
    assert again.meeting.revision == final.meeting.revision + 1
    assert again.meeting.generation == final.meeting.generation
    assert removal.next_step is Step.DELETE


def test_a_retry_with_nothing_outstanding_is_refused():
    approved = lifecycle.approve(a_booking(), now=NOW, with_meeting=True)

    for booking in (a_booking(), created_meeting(approved)):
        with pytest.raises(IllegalTransitionError) as refused:
            lifecycle.meeting_retried(booking, now=NOW)

        assert refused.value.code == "no_meeting_to_retry"


def test_a_new_meeting_after_a_deleted_one_uses_a_new_external_id():
    booking = replace(
        a_booking(status=BookingStatus.CONFIRMED, booking_id="b1", tenant_id="t"),
        meeting=MeetingState(wanted=False, meeting_id="old", removed=True),
    )

    requested = lifecycle.meeting_requested(booking, now=NOW)

    assert requested.external_id == "t:b1:2"
    assert requested.meeting.meeting_id is None
    assert requested.meeting.status is MeetingStatus.PENDING
    assert requested.next_step is Step.CREATE


def test_a_meeting_gone_from_teams_while_wanted_is_made_anew():
    booking = created_meeting(
        lifecycle.approve(a_booking(booking_id="b1", tenant_id="t"), now=NOW, with_meeting=True)
    )

    found_gone = facts.gone(booking, 1, "m1", "w1", NOW)

    assert found_gone.external_id == "t:b1:2"
    assert found_gone.next_step is Step.CREATE
    assert found_gone.meeting.join_url is None


def test_a_sighting_of_an_older_generation_changes_nothing():
    booking = created_meeting(lifecycle.approve(a_booking(), now=NOW, with_meeting=True))
    anew = facts.gone(booking, 1, "m1", "w1", NOW)

    late = facts.seen(
        anew, 1, Sighting("m1", "u", "o1", booking.start, booking.end, True), "w", NOW
    )

    assert late == anew


def test_rescheduling_to_an_end_before_the_start_is_refused():
    with pytest.raises(ValueError, match="after"):
        lifecycle.reschedule(a_booking(), start=T0, end=T0, now=NOW)
