"""Payments apply by the state their events describe, never by arrival order (SPEC §6)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localdev import stripe_events as stripe_test
from shared.domain import booking as lifecycle
from shared.domain.booking import BookingStatus
from shared.domain.payment import (
    BookingRef,
    FactKind,
    PaymentFact,
    PaymentState,
    PaymentStatus,
    merge,
)
from shared.payments.events import (
    PayloadError,
    PayloadTooLargeError,
    SignatureError,
    interpret,
    parse,
    verify,
)
from tests.builders import a_booking

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_unit_test_signing_key_0123456789"

SUCCESS = PaymentFact(FactKind.SUCCEEDED, T0, intent_id="pi_1", amount=4500, currency="gbp")
FAILURE = PaymentFact(
    FactKind.FAILED, T0 - timedelta(minutes=2), intent_id="pi_1", failure_code="card_declined"
)
LATER_FAILURE = PaymentFact(
    FactKind.FAILED, T0 - timedelta(minutes=1), intent_id="pi_1", failure_code="expired_card"
)
PARTIAL = PaymentFact(
    FactKind.REFUNDED, T0 + timedelta(hours=1), intent_id="pi_1", amount=4500, amount_refunded=1000
)
FULL = PaymentFact(
    FactKind.REFUNDED,
    T0 + timedelta(hours=2),
    intent_id="pi_1",
    amount=4500,
    amount_refunded=4500,
    fully_refunded=True,
)
FACTS = [SUCCESS, FAILURE, LATER_FAILURE, PARTIAL, FULL]
# A second payment of the same booking (a double click), and its refund.
SECOND = PaymentFact(
    FactKind.SUCCEEDED, T0 + timedelta(minutes=1), intent_id="pi_2", amount=4500, currency="gbp"
)
SECOND_REFUNDED = PaymentFact(
    FactKind.REFUNDED,
    T0 + timedelta(hours=3),
    intent_id="pi_2",
    amount=4500,
    amount_refunded=4500,
    fully_refunded=True,
)
ALL_FACTS = [*FACTS, SECOND, SECOND_REFUNDED]


def apply_all(facts, status=BookingStatus.PENDING):
    booking = a_booking(status=status)
    for fact in facts:
        booking = lifecycle.record_payment(booking, fact, now=T0, with_meeting=True)
    return booking


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.sampled_from(FACTS), min_size=1, max_size=12).flatmap(st.permutations))
def test_any_order_and_repetition_of_events_ends_in_the_same_booking(facts):
    # GIVEN any sequence of one payment's events, some repeated, in any order
    distinct = list(dict.fromkeys(facts))
    # WHEN they are applied, and when the distinct ones are applied in time order
    shuffled = apply_all(facts)
    in_order = apply_all(sorted(distinct, key=lambda f: f.occurred_at))
    # THEN the booking's status, payment and meeting wish are the same
    assert shuffled.status is in_order.status
    assert shuffled.payment == in_order.payment
    assert shuffled.meeting.wanted == in_order.meeting.wanted


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.sampled_from(ALL_FACTS), min_size=1, max_size=14).flatmap(st.permutations))
def test_the_payment_state_is_a_function_of_the_facts_seen_whatever_their_order(facts):
    state = PaymentState()
    for fact in facts:
        state = merge(state, fact)

    again = PaymentState()
    for fact in sorted(set(facts), key=lambda f: (f.occurred_at, f.kind.value)):
        again = merge(again, fact)

    assert state == again


def test_refunding_a_duplicate_payment_keeps_the_booking_and_its_meeting():
    booking = apply_all([SUCCESS, SECOND, SECOND_REFUNDED])

    assert booking.status is BookingStatus.CONFIRMED
    assert booking.meeting.wanted
    assert booking.payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert booking.payment.amount == 9000
    assert booking.payment.amount_refunded == 4500


def test_refunding_every_payment_cancels_the_booking():
    booking = apply_all([SUCCESS, SECOND, SECOND_REFUNDED, FULL])

    assert booking.status is BookingStatus.CANCELLED
    assert booking.payment.status is PaymentStatus.REFUNDED


def test_a_success_confirms_a_pending_booking_and_asks_for_its_meeting():
    booking = apply_all([SUCCESS])

    assert booking.status is BookingStatus.CONFIRMED
    assert booking.meeting.wanted
    assert booking.payment.status is PaymentStatus.PAID
    assert (booking.payment.amount, booking.payment.currency) == (4500, "gbp")


def test_without_teams_a_payment_confirms_without_a_meeting():
    booking = lifecycle.record_payment(a_booking(), SUCCESS, now=T0, with_meeting=False)

    assert booking.status is BookingStatus.CONFIRMED
    assert not booking.meeting.wanted


def test_a_refund_before_its_payment_leaves_the_booking_cancelled():
    booking = apply_all([FULL, SUCCESS])

    assert booking.status is BookingStatus.CANCELLED
    assert booking.status_reason == lifecycle.REFUNDED_REASON
    assert booking.payment.status is PaymentStatus.REFUNDED
    assert not booking.meeting.wanted


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.DECLINED])
def test_a_payment_never_revives_a_closed_booking(status):
    booking = apply_all([SUCCESS], status=status)

    assert booking.status is status
    assert booking.payment.paid


def test_a_partial_refund_keeps_the_booking():
    booking = apply_all([SUCCESS, PARTIAL])

    assert booking.status is BookingStatus.CONFIRMED
    assert booking.payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert booking.payment.amount_refunded == 1000


def test_a_failure_is_recorded_and_the_latest_one_is_kept():
    booking = apply_all([LATER_FAILURE, FAILURE])

    assert booking.status is BookingStatus.PENDING
    assert booking.payment.status is PaymentStatus.FAILED
    assert booking.payment.failure_code == "expired_card"


def test_a_repeated_fact_changes_nothing_and_returns_the_booking_itself():
    once = apply_all([SUCCESS])

    assert lifecycle.record_payment(once, SUCCESS, now=T0, with_meeting=True) is once


def test_a_late_failure_does_not_undo_a_success():
    state = merge(merge(PaymentState(), SUCCESS), FAILURE)

    assert state.status is PaymentStatus.PAID


# -- what an event says ----------------------------------------------------------------------------


def event_of(body):
    return parse(json.dumps(body))


def fact_of(body) -> PaymentFact:
    fact = interpret(event_of(body)).fact
    assert fact is not None
    return fact


def test_a_payment_intent_success_names_its_booking_amount_and_intent():
    body = stripe_test.payment_succeeded("t1", "b1", amount=1234)
    fact = fact_of(body)

    assert interpret(event_of(body)).ref == BookingRef("t1", "b1")
    assert fact.kind is FactKind.SUCCEEDED
    assert fact.amount == 1234
    assert fact.intent_id == stripe_test.intent_id_for("b1")


def test_an_unpaid_checkout_and_an_unknown_type_are_ignored():
    unpaid = interpret(event_of(stripe_test.checkout_completed("t1", "b1", paid=False)))
    other = interpret(event_of(stripe_test.event("invoice.paid", {"id": "in_1"})))

    assert unpaid.fact is None
    assert unpaid.ignored
    assert other.fact is None
    assert other.ignored


def test_a_refund_is_full_when_its_charge_says_so():
    full = fact_of(stripe_test.refund("t1", "b1"))
    partial = fact_of(stripe_test.refund("t1", "b1", refunded=100))

    assert full.fully_refunded
    assert not partial.fully_refunded
    assert partial.amount_refunded == 100


def test_a_refund_without_metadata_keeps_its_intent_to_find_the_booking():
    body = stripe_test.refund(None, "b1")

    assert interpret(event_of(body)).ref is None
    assert fact_of(body).intent_id == stripe_test.intent_id_for("b1")


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {},
        {"tenantId": "t1"},
        {"tenantId": 5, "bookingId": "b"},
        {"tenantId": "a/b", "bookingId": "b"},
    ],
)
def test_metadata_that_cannot_name_a_booking_gives_no_booking(metadata):
    body = stripe_test.payment_succeeded("t1", "b1")
    body["data"]["object"]["metadata"] = metadata

    assert interpret(event_of(body)).ref is None


@pytest.mark.parametrize("amount", [True, -1, 2**40, "4500", 1.5])
def test_amounts_that_are_not_amounts_are_left_out(amount):
    body = stripe_test.payment_succeeded("t1", "b1")
    body["data"]["object"]["amount_received"] = amount
    body["data"]["object"]["amount"] = amount

    assert fact_of(body).amount is None


def test_an_expanded_payment_intent_on_a_checkout_session_still_names_the_intent():
    body = stripe_test.checkout_completed("t1", "b1")
    body["data"]["object"]["payment_intent"] = {"id": "pi_expanded", "object": "payment_intent"}

    assert fact_of(body).intent_id == "pi_expanded"


def test_failure_text_from_stripe_loses_control_characters():
    body = stripe_test.payment_failed("t1", "b1")
    body["data"]["object"]["last_payment_error"]["message"] = "bad\r\nX-Injected: 1" + "x" * 900

    message = fact_of(body).failure_message

    assert message is not None
    assert "\r" not in message
    assert "\n" not in message
    assert len(message) == 500


# -- the signature -------------------------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    return stripe_test.signature(body, secret, at)


def test_a_signature_from_the_future_is_refused():
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()

    with pytest.raises(SignatureError, match="tolerance"):
        verify(raw, signed(raw, at=int(time.time()) + 302), SECRET)
    with pytest.raises(SignatureError):
        verify(raw, signed(raw, at=10**20), SECRET)


@pytest.mark.parametrize("intent", ["pi_x/y", "pi_x#y", "pi|x", "pi\\x", "pi?x", "p" * 300])
def test_an_intent_id_that_cannot_be_a_key_is_left_out(intent):
    body = stripe_test.payment_succeeded("t1", "b1")
    body["data"]["object"]["id"] = intent

    assert fact_of(body).intent_id is None


def test_a_correctly_signed_event_is_read():
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()

    assert verify(raw, signed(raw), SECRET).type == "payment_intent.succeeded"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=notanumber,v1=abc",
        "v1=abc",
        "t=1",
        "garbage",
        "t=1,v0=abc",
    ],
)
def test_a_missing_or_malformed_signature_is_refused(header):
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()

    with pytest.raises(SignatureError):
        verify(raw, header, SECRET)


def test_a_forged_stale_or_altered_event_is_refused():
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()

    with pytest.raises(SignatureError, match="does not match"):
        verify(raw, signed(raw, "whsec_other"), SECRET)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(raw, signed(raw, at=int(time.time()) - 301), SECRET)
    with pytest.raises(SignatureError, match="does not match"):
        verify(raw.replace(b"4500", b"1"), signed(raw), SECRET)


def test_a_signed_body_that_is_not_an_event_is_a_payload_error():
    for raw in (b"{", b"[]", b'{"object":"event"}', b"[" * 100 + b"]" * 100, b'{"id":"x"}'):
        with pytest.raises(PayloadError):
            verify(raw, signed(raw), SECRET)


def test_a_body_beyond_the_limit_is_refused_before_any_work():
    raw = b" " * (512 * 1024 + 1)

    with pytest.raises(PayloadTooLargeError):
        verify(raw, signed(raw), SECRET)


def test_a_body_that_is_not_utf8_is_refused():
    raw = b'{"id": "\xff"}'

    with pytest.raises(SignatureError):
        verify(raw, signed(raw), SECRET)


# -- hostile signature headers -----------------------------------------------------------------


def _valid_parts(raw: bytes) -> tuple[str, str]:
    t, v1 = signed(raw).split(",")
    return t, v1


_header_items = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["t=", "v1=", "v0=", "=", ",", "é", "\u202e", "\x00", " ", "v1=é"]),
    st.builds(lambda n: "v1=" + "a" * n, st.integers(0, 200)),
    st.builds(lambda n: "t=" + "9" * n, st.integers(0, 40)),
)


@settings(max_examples=500, deadline=None)
@given(items=st.lists(_header_items, max_size=12), keep_valid=st.booleans(), many=st.integers(0, 3))
def test_any_signature_header_is_a_refusal_or_an_event_never_another_error(items, keep_valid, many):
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()
    t, v1 = _valid_parts(raw)
    header = ",".join([t, *items, *([v1] if keep_valid else [])] + ["v1=é"] * many)

    try:
        event = verify(raw, header, SECRET)
    except SignatureError:
        return
    # Accepted only with the real signature in it
    assert keep_valid
    assert event.type == "payment_intent.succeeded"


@pytest.mark.parametrize(
    "make",
    [
        lambda t, v1: f"{t},v1=é",
        lambda t, v1: f"{t},v1=é,{v1}",
        lambda t, v1: f"{t},{v1.upper()}",
        lambda t, v1: f"{t},{v1}é",
        lambda t, v1: f"{t}," + ",".join(["v1=" + "0" * 64] * 5000) + f",{v1}",
        lambda t, v1: f"{t},{t},{v1}",
        lambda t, v1: f"t=-1,{v1}",
        lambda t, v1: f"t={'9' * 400},{v1}",
        lambda t, v1: f"{t},{v1},v1=",
    ],
    ids=[
        "non-ascii v1",
        "non-ascii then valid",
        "upper-case hex",
        "trailing non-ascii",
        "huge",
        "two timestamps",
        "negative time",
        "huge time",
        "empty v1",
    ],
)
def test_a_malformed_signature_header_is_a_refusal_whatever_else_it_holds(make):
    raw = json.dumps(stripe_test.payment_succeeded("t1", "b1")).encode()
    t, v1 = _valid_parts(raw)

    with pytest.raises(SignatureError, match="malformed"):
        verify(raw, make(t, v1), SECRET)
