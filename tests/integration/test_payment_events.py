"""Payment events on Azurite: the record is the idempotency check, the pending row finds work that
stopped half-way, and missed webhooks are recovered from Stripe's API (faked at the wire)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from localdev import stripe_events as stripe_test
from shared.bootstrap import Services
from shared.domain.booking import Booking, BookingStatus, Participant, ParticipantRole
from shared.domain.payment import BookingRef, FactKind, PaymentFact
from shared.services.payments import MAX_APPLY_ATTEMPTS, PaymentEvents
from shared.storage.errors import AlreadyExistsError, ConcurrencyError, StorageUnavailableError
from shared.storage.payment_events import EventState, RecordedEvent, TablePaymentEventRepository
from tests.integration.conftest import TENANT

NOW = datetime.now(UTC).replace(microsecond=0)


def received(event_id: str, booking_id: str = "b1", **changes: Any) -> RecordedEvent:
    now = datetime.now(UTC)
    event = RecordedEvent(
        event_id=event_id,
        type="payment_intent.succeeded",
        state=EventState.RECEIVED,
        received_at=now,
        source="webhook",
        ref=BookingRef(TENANT, booking_id),
        fact=PaymentFact(FactKind.SUCCEEDED, now, intent_id="pi_1", amount=4500),
        claim_until=now + timedelta(seconds=30),
    )
    return replace(event, **changes)


@pytest.fixture
def events(tables):
    return TablePaymentEventRepository(tables)


def test_recording_an_event_twice_is_refused(events):
    events.record(received("evt_1"))

    with pytest.raises(AlreadyExistsError):
        events.record(received("evt_1"))


def test_only_one_of_two_racing_claims_wins(events):
    first = events.record(received("evt_2"))

    events.claim(first, NOW + timedelta(minutes=1))

    with pytest.raises(ConcurrencyError):
        events.claim(first, NOW + timedelta(minutes=1))


def test_a_finished_event_is_no_longer_pending_and_keeps_its_fact(events):
    record = events.record(received("evt_3"))
    events.record(received("evt_4"))
    assert {e.event_id for e in events.list_pending()} == {"evt_3", "evt_4"}

    events.finish(record, EventState.APPLIED, "confirmed", NOW)

    assert [e.event_id for e in events.list_pending()] == ["evt_4"]
    stored = events.get("evt_3")
    assert stored.state is EventState.APPLIED
    assert stored.fact == record.fact
    assert stored.ref == record.ref


def test_an_intent_names_its_booking_once_linked(events):
    assert events.link_intent("pi_9", BookingRef(TENANT, "b9")) == []

    refund = PaymentFact(FactKind.REFUNDED, NOW, intent_id="pi_9", fully_refunded=True)
    assert events.park("pi_9", "evt_r", refund) == BookingRef(TENANT, "b9")


def test_a_refund_parked_before_its_intent_is_linked_comes_back_with_the_link(events):
    # GIVEN a refund whose charge named no booking, for an intent not linked yet
    refund = PaymentFact(FactKind.REFUNDED, NOW, intent_id="pi_7", fully_refunded=True)
    assert events.park("pi_7", "evt_r7", refund) is None
    assert events.park("pi_7", "evt_r7", refund) is None  # a redelivery parks it once

    # WHEN the success names the intent's booking
    parked = events.link_intent("pi_7", BookingRef(TENANT, "b7"))

    # THEN the parked refund comes back to be applied with it, and stays for a re-link
    assert [(p.event_id, p.fact) for p in parked] == [("evt_r7", refund)]
    assert events.link_intent("pi_7", BookingRef(TENANT, "b7")) == parked


def race_park_and_link(events: TablePaymentEventRepository, n: int) -> tuple[Any, list[str]]:
    """A refund parking and a success linking the same intent, released at once."""
    intent = f"pi_race_{n}"
    refund = PaymentFact(FactKind.REFUNDED, NOW, intent_id=intent, fully_refunded=True)
    results: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def park() -> None:
        barrier.wait()
        results["park"] = events.park(intent, f"evt_{n}", refund)

    def link() -> None:
        barrier.wait()
        results["link"] = events.link_intent(intent, BookingRef(TENANT, "b"))

    threads = [threading.Thread(target=park), threading.Thread(target=link)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results["park"], [p.event_id for p in results["link"]]


def test_parking_and_linking_one_intent_at_once_never_lose_the_refund(events):
    for n in range(20):
        # GIVEN a refund parking and a success linking the same intent at the same moment
        found, parked_seen = race_park_and_link(events, n)

        # THEN the refund is never lost: it saw the link, or the link brought it back
        assert found is not None or parked_seen == [f"evt_{n}"], (n, found, parked_seen)


# -- the service, with Graph behind the emulator -------------------------------------------------


def a_pending_booking(svc: Services) -> Booking:
    start = (NOW + timedelta(days=3)).replace(minute=0, second=0)
    return svc.bookings.add(
        Booking(
            tenant_id=TENANT,
            booking_id=uuid.uuid4().hex,
            status=BookingStatus.PENDING,
            subject="Physics",
            start=start,
            end=start + timedelta(hours=1),
            time_zone="Europe/London",
            participants=(Participant("s1", ParticipantRole.STUDENT, "s1@example.com"),),
            created_by="s1",
            created_at=NOW,
            updated_at=NOW,
        )
    )


def local_passthrough(rsps: responses.RequestsMock) -> None:
    # Azurite and the Graph emulator are real servers on this machine; only Stripe is faked.
    rsps.add_passthru(re.compile(r"https?://(127\.0\.0\.1|localhost)[:/]"))


def test_a_redelivery_after_the_claim_lapsed_finishes_the_event(svc):
    # GIVEN an event whose receiver recorded it and stopped (claim lapsed)
    booking = a_pending_booking(svc)
    body = stripe_test.payment_succeeded(TENANT, booking.booking_id)
    events = TablePaymentEventRepository(svc.tables)
    events.record(
        received(
            body["id"], booking.booking_id, claim_until=datetime.now(UTC) - timedelta(seconds=1)
        )
    )

    # WHEN Stripe delivers the event again
    raw = json.dumps(body).encode()
    receipt = svc.payments.receive_webhook(raw, stripe_test.signature(raw, webhook_secret(svc)))

    # THEN it is applied now
    assert receipt.outcome.value == "applied"
    assert svc.bookings.get(TENANT, booking.booking_id).status is BookingStatus.CONFIRMED
    assert events.list_pending() == []


def test_a_redelivery_while_the_first_receiver_still_holds_it_does_nothing(svc):
    booking = a_pending_booking(svc)
    body = stripe_test.payment_succeeded(TENANT, booking.booking_id)
    TablePaymentEventRepository(svc.tables).record(received(body["id"], booking.booking_id))

    raw = json.dumps(body).encode()
    receipt = svc.payments.receive_webhook(raw, stripe_test.signature(raw, webhook_secret(svc)))

    assert receipt.outcome.value == "duplicate"
    assert svc.bookings.get(TENANT, booking.booking_id).status is BookingStatus.PENDING


def webhook_secret(svc: Services) -> str:
    return svc.settings.stripe.webhook_secret


def stripe_lists(rsps: responses.RequestsMock, events: list[dict], seen: list[dict]) -> None:
    def answer(request):
        seen.append(
            {
                **parse_qs(urlsplit(request.url).query),
                "authorization": [request.headers.get("Authorization")],
            }
        )
        body = {"object": "list", "url": "/v1/events", "has_more": False, "data": events}
        return 200, {"Request-Id": "req_test"}, json.dumps(body)

    rsps.add_callback(responses.GET, "https://api.stripe.com/v1/events", callback=answer)


def test_missed_webhooks_are_recovered_from_stripe_exactly_once(make_services):
    # GIVEN a restricted key, two bookings paid for, and Stripe listing both payment events as
    # undelivered although one of them did reach us
    svc = make_services(STRIPE_API_KEY="rk_test_restricted_read_events")
    delivered_booking, missed_booking = a_pending_booking(svc), a_pending_booking(svc)
    delivered = stripe_test.payment_succeeded(TENANT, delivered_booking.booking_id)
    missed = stripe_test.payment_succeeded(TENANT, missed_booking.booking_id)
    raw = json.dumps(delivered).encode()
    svc.payments.receive_webhook(raw, stripe_test.signature(raw, webhook_secret(svc)))
    queries: list[dict] = []

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        local_passthrough(rsps)
        stripe_lists(rsps, [delivered, missed], queries)

        # WHEN the timer's recovery runs, twice
        first = svc.payments.recover()
        second = svc.payments.recover()

    # THEN the missed event was applied once: its booking confirmed with its meeting
    assert (first.listed, first.recovered) == (2, 1)
    assert (second.listed, second.recovered) == (2, 0)
    booking = svc.bookings.get(TENANT, missed_booking.booking_id)
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.meeting.in_teams
    # AND Stripe was asked for failed deliveries of the last three days, with the key
    assert queries[0]["delivery_success"] == ["false"]
    since = datetime.fromtimestamp(int(queries[0]["created[gte]"][0]), UTC)
    assert (
        timedelta(days=3) - timedelta(minutes=1)
        < datetime.now(UTC) - since
        < timedelta(days=3, minutes=1)
    )
    assert queries[0]["authorization"] == ["Bearer rk_test_restricted_read_events"]


def test_without_a_key_nothing_is_asked_of_stripe(svc):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        local_passthrough(rsps)
        report = svc.payments.recover()
        stripe_calls = [c for c in rsps.calls if "stripe.com" in str(c.request.url)]

    assert report.listed == 0
    assert stripe_calls == []


def test_stripe_unreachable_does_not_stop_the_timer(make_services):
    svc = make_services(STRIPE_API_KEY="rk_test_restricted_read_events")

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        local_passthrough(rsps)
        rsps.add(responses.GET, "https://api.stripe.com/v1/events", status=503, json={})
        report = svc.payments.recover()

    assert report.errors == 1


def test_a_receiver_whose_claim_was_taken_over_cannot_finish_the_event(events):
    # GIVEN an event whose first receiver's claim lapsed and another receiver took it over
    first = events.record(received("evt_5"))
    events.claim(first, datetime.now(UTC) + timedelta(seconds=30))

    # WHEN the first receiver tries to finish with the version it holds
    # THEN it is refused (the one holding the claim finishes it)
    with pytest.raises(ConcurrencyError):
        events.finish(first, EventState.APPLIED, "confirmed", datetime.now(UTC))
    assert [e.event_id for e in events.list_pending()] == ["evt_5"]


def test_an_event_that_fails_every_time_is_given_up_and_logged(svc, caplog):
    # GIVEN an event that every receiver took on and none could finish
    booking = a_pending_booking(svc)
    events = TablePaymentEventRepository(svc.tables)
    record = events.record(
        received("evt_hopeless", booking.booking_id, claim_until=datetime.now(UTC))
    )
    for _ in range(5):
        record = events.claim(record, datetime.now(UTC) - timedelta(seconds=1))

    # WHEN the timer finds it once more
    report = svc.payments.recover()

    # THEN it is rejected for good, with an error log, and no longer pending
    assert report.pending == 1
    assert events.get("evt_hopeless").state is EventState.REJECTED
    assert events.get("evt_hopeless").outcome == "gave_up_after_attempts"
    assert events.list_pending() == []
    assert "gave_up_after_attempts" in caplog.text


class FailsFirst:
    """The bookings repository, with its first `times` saves timing out (storage slow under
    load)."""

    def __init__(self, inner: Any, times: int = 1) -> None:
        self._inner = inner
        self._left = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update(self, booking: Booking, audit: Any = ()) -> Booking:
        if self._left > 0:
            self._left -= 1
            raise StorageUnavailableError(f"booking {booking.booking_id}: storage timed out")
        saved: Booking = self._inner.update(booking, audit)
        return saved


def receiver(svc: Services, bookings: Any) -> PaymentEvents:
    return PaymentEvents(
        TablePaymentEventRepository(svc.tables),
        bookings,
        svc.directory,
        svc.sync,
        svc.clock,
        webhook_secret=webhook_secret(svc),
    )


def test_a_redelivery_after_storage_failed_half_way_applies_the_event_at_once(svc):
    # GIVEN a receiver whose save of the booking times out after it recorded the event
    booking = a_pending_booking(svc)
    body = stripe_test.payment_succeeded(TENANT, booking.booking_id)
    raw = json.dumps(body).encode()
    payments = receiver(svc, FailsFirst(svc.bookings))
    with pytest.raises(StorageUnavailableError):  # Stripe is answered 503
        payments.receive_webhook(raw, stripe_test.signature(raw, webhook_secret(svc)))

    # WHEN Stripe delivers it again moments later (well within the receiver's 30 s claim)
    receipt = payments.receive_webhook(raw, stripe_test.signature(raw, webhook_secret(svc)))

    # THEN it is applied now, not answered "duplicate" with the booking left pending
    assert receipt.outcome.value == "applied"
    assert svc.bookings.get(TENANT, booking.booking_id).status is BookingStatus.CONFIRMED
    assert TablePaymentEventRepository(svc.tables).list_pending() == []


def test_storage_failing_for_longer_than_the_attempts_allowed_never_gives_a_payment_up(svc):
    # GIVEN storage failing the booking's save for more deliveries than MAX_APPLY_ATTEMPTS
    booking = a_pending_booking(svc)
    body = stripe_test.payment_succeeded(TENANT, booking.booking_id)
    raw = json.dumps(body).encode()
    payments = receiver(svc, FailsFirst(svc.bookings, times=MAX_APPLY_ATTEMPTS + 2))
    signature = stripe_test.signature(raw, webhook_secret(svc))
    for _ in range(MAX_APPLY_ATTEMPTS + 2):
        with pytest.raises(StorageUnavailableError):
            payments.receive_webhook(raw, signature)

    # WHEN storage answers again and Stripe delivers once more
    receipt = payments.receive_webhook(raw, signature)

    # THEN the payment is applied: storage trouble is no reason to give an event up
    assert receipt.outcome.value == "applied"
    assert svc.bookings.get(TENANT, booking.booking_id).status is BookingStatus.CONFIRMED
