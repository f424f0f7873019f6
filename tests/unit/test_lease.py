"""The one lease every claim uses: the meeting's Graph calls, a Stripe event's apply, one
e-mail's send. A lease ending at `now` has lapsed; only its own token is its holder's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain import convergence as facts
from shared.domain.lease import Lease
from shared.domain.meeting import MeetingState
from shared.storage.mail import ClaimOutcome, InMemoryMailLedger, MailKey
from shared.storage.payment_events import EventState, RecordedEvent
from tests.builders import a_booking

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("until", "held"),
    [(None, False), (NOW - SECOND, False), (NOW, False), (NOW + SECOND, True)],
)
def test_a_lease_is_held_only_before_its_end(until, held):
    assert Lease("w1", until).held(NOW) is held
    assert Lease(None, until).held(NOW) is held


def test_a_lease_is_mine_only_by_its_own_token():
    lease = Lease("w1", NOW + SECOND)

    assert lease.mine("w1")
    assert not lease.mine("w2")
    assert not lease.mine(None)
    assert not Lease(None, NOW + SECOND).mine(None)
    # A lapsed lease still names its holder, until someone takes it over.
    assert Lease("w1", NOW - SECOND).mine("w1")


def test_held_by_other_needs_another_token_and_a_lease_in_force():
    lease = Lease("w1", NOW + SECOND)

    assert lease.held_by_other("w2", NOW)
    assert lease.held_by_other(None, NOW)
    assert not lease.held_by_other("w1", NOW)
    assert not Lease("w1", NOW).held_by_other("w2", NOW)
    assert not Lease("w1", None).held_by_other("w2", NOW)
    assert not Lease(None, NOW + SECOND).held_by_other("w2", NOW)


def test_the_meeting_claim_is_a_lease_on_its_two_columns():
    meeting = MeetingState(claim_token="w1", claim_until=NOW + SECOND)

    assert meeting.lease == Lease("w1", NOW + SECOND)
    assert meeting.leased(Lease()) == MeetingState()
    assert meeting.claimed_by_other("w2", NOW)
    assert not meeting.claimed_by_other("w2", NOW + SECOND)
    assert meeting.due("w1", NOW)


def test_a_claim_is_released_by_its_own_token_only():
    held = facts.claimed(a_booking(), "w1", NOW + SECOND, check=True)

    assert held.meeting.lease == Lease("w1", NOW + SECOND)
    assert facts.released(held, "w2") is held
    assert facts.released(held, None) is held
    assert facts.released(held, "w1").meeting.lease == Lease()


def test_a_payment_event_is_claimed_until_its_claim_ends():
    event = RecordedEvent("evt_1", "payment_intent.succeeded", EventState.RECEIVED, NOW, "webhook")

    assert not event.claimed(NOW)
    assert replace(event, claim_until=NOW + SECOND).claimed(NOW)
    assert not replace(event, claim_until=NOW).claimed(NOW)


def test_a_mail_claim_is_held_until_its_end_then_taken_over():
    ledger = InMemoryMailLedger()
    key = MailKey("t1", "b1", 1, "a@example.com")
    first = ledger.claim(key, NOW - SECOND, NOW)

    held = ledger.claim(key, NOW - SECOND, NOW + SECOND)
    taken = ledger.claim(key, NOW, NOW + SECOND)

    assert (first.outcome, held.outcome, held.until) == (
        ClaimOutcome.CLAIMED,
        ClaimOutcome.HELD,
        NOW,
    )
    assert taken.outcome is ClaimOutcome.CLAIMED
    assert taken.token != first.token
