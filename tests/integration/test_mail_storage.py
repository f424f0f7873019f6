"""The mail side of storage, on Azurite and in memory alike: the pending-mail marker index of the
bookings table, the mail state round trip, and the sent-mail ledger's claims."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.domain import notices
from shared.domain.booking import MAIL_WORK, BookingStatus
from shared.domain.notices import MailStatus, NoticeKind
from shared.storage.bookings import TableBookingRepository
from shared.storage.mail import ClaimOutcome, InMemoryMailLedger, MailKey, TableMailLedger
from shared.storage.memory import InMemoryBookingRepository
from tests.builders import T0, a_booking

pytestmark = pytest.mark.integration


@pytest.fixture(params=["table", "memory"])
def store(request):
    return request.param


@pytest.fixture
def bookings(store, request):
    if store == "memory":
        return InMemoryBookingRepository()
    return TableBookingRepository(request.getfixturevalue("tables"))


@pytest.fixture
def ledger(store, request):
    if store == "memory":
        return InMemoryMailLedger()
    return TableMailLedger(request.getfixturevalue("tables"))


def test_mail_state_reads_back_equal(bookings):
    booking = notices.requested(a_booking(), NoticeKind.APPROVED, now=T0)
    booking = notices.attempt_failed(booking, 1, "graph_unavailable", permanent=False, now=T0)
    booking = notices.retry_scheduled(booking, 1, T0 + timedelta(seconds=30))
    booking = notices.requested(booking, NoticeKind.RESCHEDULED, now=T0)
    booking = notices.sent_without_link(booking, 2, ["student@example.com"])
    told = notices.Told(T0, T0 + timedelta(hours=1), "https://teams.example/join")
    booking = replace(
        booking, mail=replace(booking.mail, told=told, link_owed=True, owed_to=("a@b.example",))
    )
    booking = replace(
        booking, mail=booking.mail.requested(NoticeKind.LINK_READY, now=T0, to=("a@b.example",))
    )

    added = bookings.add(booking)

    assert bookings.get(added.tenant_id, added.booking_id).mail == booking.mail


def test_the_mail_marker_follows_the_pending_notices(bookings):
    # GIVEN a booking that owes mail
    booking = bookings.add(
        notices.requested(a_booking(status=BookingStatus.CONFIRMED), NoticeKind.APPROVED, now=T0)
    )
    assert [b.booking_id for b in bookings.list_marked(MAIL_WORK, "tenant-a")] == [
        booking.booking_id
    ]

    # WHEN its notice is delivered
    saved = bookings.update(notices.delivered(booking, 1, T0))

    # THEN it no longer shows, and its mail says sent
    assert bookings.list_marked(MAIL_WORK, "tenant-a") == []
    assert saved.mail.status is MailStatus.SENT


def test_mail_waiting_for_a_scheduled_retry_is_left_to_it(bookings):
    booking = notices.requested(a_booking(), NoticeKind.APPROVED, now=T0)
    booking = bookings.add(notices.retry_scheduled(booking, 1, T0 + timedelta(minutes=10)))

    assert bookings.list_marked(MAIL_WORK, "tenant-a", due_by=T0) == []
    due = bookings.list_marked(MAIL_WORK, "tenant-a", due_by=T0 + timedelta(minutes=11))
    assert [b.booking_id for b in due] == [booking.booking_id]


def test_other_tenants_mail_is_not_listed(bookings):
    bookings.add(notices.requested(a_booking(tenant_id="tenant-b"), NoticeKind.APPROVED, now=T0))

    assert bookings.list_marked(MAIL_WORK, "tenant-a") == []


def key(booking: str = "b1", recipient: str = "student@example.com") -> MailKey:
    return MailKey("tenant-a", booking, 1, recipient)


def test_a_claimed_mail_is_held_then_sent_once(ledger):
    first = ledger.claim(key(), T0, T0 + timedelta(minutes=2))
    second = ledger.claim(key(), T0, T0 + timedelta(minutes=2))

    assert first.outcome is ClaimOutcome.CLAIMED
    assert second.outcome is ClaimOutcome.HELD
    assert second.until == T0 + timedelta(minutes=2)

    ledger.mark_sent(first, T0)

    assert ledger.claim(key(), T0 + timedelta(days=1), T0 + timedelta(days=2)).outcome is (
        ClaimOutcome.SENT
    )


def test_a_released_claim_can_be_claimed_again(ledger):
    first = ledger.claim(key(), T0, T0 + timedelta(minutes=2))
    ledger.release(first)

    assert ledger.claim(key(), T0, T0 + timedelta(minutes=2)).outcome is ClaimOutcome.CLAIMED


def test_a_lapsed_claim_is_taken_over_and_the_old_holder_cannot_release_it(ledger):
    old = ledger.claim(key(), T0, T0 + timedelta(minutes=2))
    later = T0 + timedelta(minutes=3)

    new = ledger.claim(key(), later, later + timedelta(minutes=2))
    ledger.release(old)  # the old holder comes back after its send failed

    assert new.outcome is ClaimOutcome.CLAIMED
    assert ledger.claim(key(), later, later).outcome is ClaimOutcome.HELD


def test_recipients_are_told_apart_and_addresses_compare_without_case(ledger):
    ledger.mark_sent(ledger.claim(key(recipient="Student@Example.com"), T0, T0), T0)

    assert ledger.claim(key(recipient="student@example.com"), T0, T0).outcome is (ClaimOutcome.SENT)
    assert ledger.claim(key(recipient="tutor@example.com"), T0, T0).outcome is (
        ClaimOutcome.CLAIMED
    )


def test_racing_claims_let_exactly_one_worker_send(ledger):
    outcomes: list[ClaimOutcome] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        claim = ledger.claim(key("race"), T0, T0 + timedelta(minutes=2))
        with lock:
            outcomes.append(claim.outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count(ClaimOutcome.CLAIMED) == 1
    assert outcomes.count(ClaimOutcome.HELD) == 7


def test_a_delivered_notice_finishes_on_the_latest_version(bookings):
    booking = bookings.add(notices.requested(a_booking(), NoticeKind.APPROVED, now=T0))
    # a user action saved meanwhile, owing another notice
    newer = bookings.update(notices.requested(replace(booking), NoticeKind.CANCELLED, now=T0))

    saved = bookings.update(notices.delivered(newer, 1, T0))

    assert [n.kind for n in saved.mail.pending] == [NoticeKind.CANCELLED]
    assert [b.booking_id for b in bookings.list_marked(MAIL_WORK, "tenant-a")] == [
        booking.booking_id
    ]
