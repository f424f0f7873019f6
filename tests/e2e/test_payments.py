"""Stripe webhooks confirm bookings, over real HTTP with real signatures: the local Functions
host, Azurite and the Graph emulator. Signatures are HMAC-SHA256 of "{t}.{payload}" with the
stack's own test secret, as Stripe computes them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import icalendar
import pytest
import requests

from localdev import stripe_events as stripe_test
from localdev.azurite import start_azurite
from localdev.graph_emulator import Fault
from localdev.stack import DEMO_TENANT_ID, local_stack
from shared.settings import StorageSettings
from shared.storage.payment_events import TABLE as EVENTS_TABLE
from shared.storage.tables import Tables, make_table_service
from tests.e2e.conftest import caller, settle
from tests.e2e.test_convergence import FAST, create, get, live_by_booking, run_timer
from tests.e2e.test_mail import invite, mails_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    state = tmp_path_factory.mktemp("payments")
    with local_stack(state_dir=state, persist=True, extra_env=FAST) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_emulator(stack):
    stack.emulator.reset()
    yield
    stack.emulator.clear_faults()


def send(
    stack,
    body: dict[str, Any] | None = None,
    *,
    raw: bytes | None = None,
    secret: str | None = None,
    timestamp: int | None = None,
    header: str | None = None,
    signed_payload: bytes | None = None,
) -> requests.Response:
    """POST an event to the webhook, signed with the stack's secret unless told otherwise."""
    payload = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if header is None:
        key = secret or stack.env["STRIPE_WEBHOOK_SECRET"]
        header = stripe_test.signature(signed_payload or payload, key, timestamp)
    if header:
        headers["Stripe-Signature"] = header
    return requests.post(
        f"{stack.api}/v1/payments/webhook", data=payload, headers=headers, timeout=30
    )


def paid(stack, booking_id: str, **kw: Any) -> requests.Response:
    return send(stack, stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id, **kw))


def event_rows(stack) -> list[dict[str, Any]]:
    service = make_table_service(StorageSettings(connection_string=stack.azurite.connection_string))
    with service:
        table = Tables(service).table(EVENTS_TABLE)
        return [dict(e) for e in table.list_entities()]


def test_a_signed_payment_confirms_the_booking_and_its_meeting_link_is_there(stack, student):
    # GIVEN a student's pending booking
    booking_id = create(student)

    # WHEN Stripe says its payment succeeded
    response = paid(stack, booking_id, amount=4500, currency="gbp")

    # THEN Stripe gets 200, the booking is confirmed with the payment and a Teams link
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    booking = get(student, booking_id)
    assert booking["status"] == "confirmed"
    assert booking["payment"]["status"] == "paid"
    assert booking["payment"]["amount"] == 4500
    assert booking["payment"]["currency"] == "gbp"
    assert booking["payment"]["paymentIntentId"] == stripe_test.intent_id_for(booking_id)
    assert booking["meeting"]["status"] == "created"
    assert booking["meetingLink"].startswith("https://")
    assert live_by_booking(stack)[booking_id] == 1


@pytest.mark.parametrize(
    "tamper",
    ["forged", "stale", "missing", "altered", "malformed_header", "not_utf8"],
)
def test_a_request_stripe_did_not_sign_is_refused_and_changes_nothing(stack, student, tamper):
    # GIVEN a pending booking and a payment event for it
    booking_id = create(student)
    body = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)
    payload = json.dumps(body).encode()
    rows_before = len(event_rows(stack))

    # WHEN the event comes signed wrongly, late, not at all, or altered after signing
    if tamper == "forged":
        response = send(stack, body, secret="whsec_" + "0" * 32)
    elif tamper == "stale":
        response = send(stack, body, timestamp=int(time.time()) - 301)
    elif tamper == "missing":
        response = send(stack, body, header="")
    elif tamper == "altered":
        altered = payload.replace(b'"amount": 4500', b'"amount": 1')
        response = send(stack, raw=altered, signed_payload=payload)
    elif tamper == "malformed_header":
        response = send(stack, body, header="t=abc,v1")
    else:
        raw = payload + b"\xff"
        response = send(stack, raw=raw)

    # THEN 400 with a code, nothing recorded, and the booking untouched
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_signature"
    assert response.json()["error"]
    assert len(event_rows(stack)) == rows_before
    assert get(student, booking_id)["status"] == "pending"


@pytest.mark.parametrize(
    "make",
    [
        lambda t, v1: f"{t},v1=\u00e9",
        lambda t, v1: f"{t},v1=\u00e9,{v1}",
        lambda t, v1: f"{t},v1=\u00e9,{v1}".encode(),
        lambda t, v1: f"{t}," + ",".join(["v1=" + "0" * 64] * 40) + ",v1=\u00e9",
        lambda t, v1: f"{t},{v1.upper()}",
        lambda t, v1: f"t=1{'0' * 30},{v1}",
    ],
    ids=["latin-1 v1", "latin-1 then valid", "utf-8 bytes", "many v1", "upper-case", "huge t"],
)
def test_a_malformed_signature_header_is_a_400_and_changes_nothing(stack, student, make):
    # GIVEN a pending booking and a payment event for it, correctly signed
    booking_id = create(student)
    payload = json.dumps(stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)).encode()
    t, v1 = stripe_test.signature(payload, stack.env["STRIPE_WEBHOOK_SECRET"]).split(",")
    rows_before = len(event_rows(stack))

    # WHEN the signature header is bent out of Stripe's shape (the real signature may be in it)
    response = requests.post(
        f"{stack.api}/v1/payments/webhook",
        data=payload,
        headers={"Content-Type": "application/json", "Stripe-Signature": make(t, v1)},
        timeout=30,
    )

    # THEN a refusal, never a 5xx, and nothing recorded
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_signature"
    assert len(event_rows(stack)) == rows_before
    assert get(student, booking_id)["status"] == "pending"


def test_the_refusal_is_logged_as_a_warning_without_the_payload(stack, student):
    booking_id = create(student)
    before = len(stack.host_output)

    send(stack, stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id), secret="whsec_x")

    # The host's output is read by a thread of its own: the line may follow the answer.
    assert settle(lambda: "invalid_signature" in "".join(stack.host_output[before:]), timeout=10)
    logged = "".join(stack.host_output[before:])
    assert "invalid_signature" in logged
    assert "WARNING" in logged
    assert booking_id not in logged


def test_a_signed_body_that_is_not_an_event_is_refused(stack):
    # GIVEN correctly signed bodies that are not JSON, not an event, or nest absurdly
    for raw in (b"{not json", b'{"object": "list"}', b"[" * 5000 + b"]" * 5000):
        # WHEN each is sent
        response = send(stack, raw=raw)

        # THEN 400 invalid_payload (never a 5xx)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "invalid_payload"


def test_the_same_event_twice_in_a_row_applies_once(stack, student):
    booking_id = create(student)
    body = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)

    first, second = send(stack, body), send(stack, body)

    assert first.json()["outcome"] == "applied"
    assert second.status_code == 200
    assert second.json()["outcome"] == "duplicate"
    assert live_by_booking(stack)[booking_id] == 1
    assert stack.emulator.snapshot()["calls"].get("createOrGet", 0) == 1


def test_twenty_concurrent_deliveries_of_one_event_make_exactly_one_meeting(stack, student):
    # GIVEN Graph slowed to 300 ms a call, and one payment event
    stack.emulator.add_fault(Fault(operation="*", latency_ms=300))
    booking_id = create(student)
    body = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)

    # WHEN Stripe delivers it twenty times at once
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: send(stack, body), range(20)))

    # THEN every delivery gets 200, one applied it, and Teams has one meeting for the booking
    assert [a.status_code for a in answers] == [200] * 20
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["applied"] + ["duplicate"] * 19
    assert settle(lambda: get(student, booking_id)["meeting"]["status"] == "created")
    assert live_by_booking(stack)[booking_id] == 1


def test_checkout_and_payment_intent_events_for_one_payment_make_one_meeting(stack, student):
    booking_id = create(student)

    send(stack, stripe_test.checkout_completed(DEMO_TENANT_ID, booking_id))
    send(stack, stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id))

    assert get(student, booking_id)["status"] == "confirmed"
    assert live_by_booking(stack)[booking_id] == 1


def test_an_async_checkout_payment_confirms_the_booking(stack, student):
    booking_id = create(student)

    response = send(
        stack, stripe_test.checkout_completed(DEMO_TENANT_ID, booking_id, async_success=True)
    )

    assert response.json()["outcome"] == "applied"
    assert get(student, booking_id)["status"] == "confirmed"


def test_an_unpaid_checkout_changes_nothing(stack, student):
    booking_id = create(student)

    response = send(stack, stripe_test.checkout_completed(DEMO_TENANT_ID, booking_id, paid=False))

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert get(student, booking_id)["status"] == "pending"


def test_a_failed_payment_is_recorded_and_the_booking_stays_pending(stack, student):
    booking_id = create(student)

    response = send(stack, stripe_test.payment_failed(DEMO_TENANT_ID, booking_id))

    assert response.json()["outcome"] == "applied"
    booking = get(student, booking_id)
    assert booking["status"] == "pending"
    assert booking["payment"]["status"] == "failed"
    assert booking["payment"]["lastFailureCode"] == "insufficient_funds"


def test_a_full_refund_cancels_the_booking_and_removes_its_meeting(stack, student):
    booking_id = create(student)
    paid(stack, booking_id)
    assert live_by_booking(stack)[booking_id] == 1

    response = send(stack, stripe_test.refund(DEMO_TENANT_ID, booking_id))

    assert response.json()["outcome"] == "applied"
    booking = get(student, booking_id)
    assert booking["status"] == "cancelled"
    assert booking["statusReason"] == "Payment refunded"
    assert booking["payment"]["status"] == "refunded"
    assert booking["meetingLink"] is None
    assert settle(lambda: live_by_booking(stack)[booking_id] == 0)


def test_a_refund_without_metadata_finds_the_booking_through_its_payment_intent(stack, student):
    booking_id = create(student)
    paid(stack, booking_id)

    response = send(stack, stripe_test.refund(None, booking_id))

    assert response.json()["outcome"] == "applied"
    assert get(student, booking_id)["status"] == "cancelled"


def test_a_refund_without_metadata_that_comes_first_still_cancels_the_booking(stack, student):
    # GIVEN a refund whose charge names no booking, delivered before the payment it refunds
    booking_id = create(student)
    now = int(time.time())
    refund = send(stack, stripe_test.refund(None, booking_id, created=now))
    assert refund.json()["outcome"] == "parked"

    # WHEN the payment's success arrives (it names the booking)
    late = paid(stack, booking_id, created=now - 60)

    # THEN the booking ends cancelled, as the facts say, and Teams never held a meeting
    assert late.json()["outcome"] == "applied"
    booking = get(student, booking_id)
    assert booking["status"] == "cancelled"
    assert booking["payment"]["status"] == "refunded"
    assert stack.emulator.snapshot()["calls"].get("createOrGet", 0) == 0


def test_refunding_a_duplicate_payment_keeps_the_booking_and_its_meeting(stack, student):
    # GIVEN a booking paid twice (two payment intents)
    booking_id = create(student)
    first = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)
    second = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)
    second["data"]["object"]["id"] = "pi_duplicate_" + booking_id[:10]
    send(stack, first)
    send(stack, second)

    # WHEN staff refund the duplicate in full
    refund = stripe_test.refund(DEMO_TENANT_ID, booking_id)
    refund["data"]["object"]["payment_intent"] = "pi_duplicate_" + booking_id[:10]
    send(stack, refund)

    # THEN the booking stays confirmed with its one meeting
    booking = get(student, booking_id)
    assert booking["status"] == "confirmed"
    assert booking["payment"]["status"] == "partially_refunded"
    assert sorted(i["status"] for i in booking["payment"]["intents"]) == ["paid", "refunded"]
    assert live_by_booking(stack)[booking_id] == 1


def test_a_partial_refund_is_recorded_and_the_booking_stays(stack, student):
    booking_id = create(student)
    paid(stack, booking_id)

    send(stack, stripe_test.refund(DEMO_TENANT_ID, booking_id, amount=4500, refunded=1000))

    booking = get(student, booking_id)
    assert booking["status"] == "confirmed"
    assert booking["payment"]["status"] == "partially_refunded"
    assert booking["payment"]["amountRefunded"] == 1000
    assert live_by_booking(stack)[booking_id] == 1


def test_a_refund_that_arrives_before_the_payment_leaves_the_booking_cancelled(stack, student):
    # GIVEN a refund event created after the payment event, but delivered first
    booking_id = create(student)
    now = int(time.time())
    success = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id, created=now - 60)
    refund = stripe_test.refund(DEMO_TENANT_ID, booking_id, created=now)

    # WHEN the refund lands, then the success
    send(stack, refund)
    late = send(stack, success)

    # THEN the booking stays cancelled, and Teams never held a meeting for it
    assert late.status_code == 200
    booking = get(student, booking_id)
    assert booking["status"] == "cancelled"
    assert booking["payment"]["status"] == "refunded"
    assert stack.emulator.snapshot()["calls"].get("createOrGet", 0) == 0


def test_a_payment_for_a_cancelled_booking_does_not_revive_it(stack, student):
    booking_id = create(student)
    student.call("POST", f"/v1/bookings/{booking_id}/cancel", {})

    response = paid(stack, booking_id)

    assert response.status_code == 200
    booking = get(student, booking_id)
    assert booking["status"] == "cancelled"
    assert booking["payment"]["status"] == "paid"  # recorded, for a refund by staff
    assert live_by_booking(stack)[booking_id] == 0


@pytest.mark.parametrize("unknown", ["booking", "tenant"])
def test_an_event_for_an_unknown_booking_or_tenant_is_acknowledged_and_logged(stack, unknown):
    tenant = DEMO_TENANT_ID if unknown == "booking" else "no-such-tenant"
    body = stripe_test.payment_succeeded(tenant, "no-such-booking")
    before = len(stack.host_output)

    response = send(stack, body)
    again = send(stack, body)

    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    assert again.json()["outcome"] == "duplicate"
    # The host's output reaches the test through a pipe reader: wait for the line.
    line = f'"reason":"unknown_{unknown}"'
    assert settle(lambda: line in "".join(stack.host_output[before:]), timeout=10)
    logged = "".join(stack.host_output[before:])
    assert "ERROR" in logged


def test_an_event_type_not_handled_is_acknowledged_and_ignored(stack):
    body = stripe_test.event("customer.created", {"id": "cus_1", "object": "customer"})

    response = send(stack, body)

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"


def test_graph_failing_still_confirms_and_the_meeting_appears_once_graph_recovers(stack, student):
    # GIVEN Graph answering 503 to every create for now
    fault = stack.emulator.add_fault(Fault(operation="createOrGet", status=503))
    booking_id = create(student)

    # WHEN the payment arrives
    response = paid(stack, booking_id)

    # THEN Stripe gets 200 and the booking is confirmed, its meeting pending
    assert response.status_code == 200
    booking = get(student, booking_id)
    assert booking["status"] == "confirmed"
    assert booking["meeting"]["status"] == "pending"
    assert booking["meeting"]["lastErrorCode"]

    # AND once Graph recovers, the queue makes the meeting
    stack.emulator.clear_faults()
    assert fault.applied >= 1
    assert settle(lambda: get(student, booking_id)["meeting"]["status"] == "created", timeout=60)
    assert live_by_booking(stack)[booking_id] == 1


def test_a_slow_graph_does_not_hold_the_answer_to_stripe_beyond_the_budget(stack, student):
    # GIVEN Graph taking 6 s to answer a create (the stack's inline budget is 2 s)
    stack.emulator.add_fault(Fault(operation="createOrGet", latency_ms=6000, count=1))
    booking_id = create(student)

    # WHEN the payment arrives
    response = paid(stack, booking_id)

    # THEN Stripe's answer did not wait for Graph's: the booking is confirmed, its meeting
    # still pending because the inline attempt gave up at the budget (a timeout)
    assert response.status_code == 200
    booking = get(student, booking_id)
    assert booking["status"] == "confirmed"
    assert booking["meeting"]["status"] == "pending"
    assert booking["meeting"]["lastErrorCode"] == "graph_timeout"
    # AND the queue finishes it: one meeting, though the slow create did make one in Teams
    assert settle(lambda: get(student, booking_id)["meeting"]["status"] == "created", timeout=60)
    assert live_by_booking(stack)[booking_id] == 1


def test_storage_down_is_a_503_and_nothing_is_half_written(tmp_path):
    with local_stack(state_dir=tmp_path, persist=True, extra_env=FAST) as stack:
        student = caller(stack, "student-1", "student")
        booking_id = create(student)
        body = stripe_test.payment_succeeded(DEMO_TENANT_ID, booking_id)

        # GIVEN storage is down
        old = stack.azurite
        old.stop()
        try:
            # WHEN Stripe delivers the payment
            response = send(stack, body)

            # THEN 503, so Stripe delivers it again
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "storage_unavailable"
        finally:
            stack.azurite = start_azurite(
                location=tmp_path / "azurite",
                ports=(old.blob_port, old.queue_port, old.table_port),
                log_file=tmp_path / "azurite-again.log",
            )
        try:
            # AND nothing was recorded or changed meanwhile
            assert event_rows(stack) == []
            assert get(student, booking_id)["status"] == "pending"

            # AND Stripe's redelivery, once storage is back, confirms it with its meeting
            again = send(stack, body)
            assert again.json()["outcome"] == "applied"
            assert get(student, booking_id)["meeting"]["status"] == "created"
        finally:
            stack.azurite.stop()


def test_the_timer_finishes_an_event_whose_processing_stopped_half_way(stack, student):
    # GIVEN an event recorded as received, whose receiver died before applying it
    # (written here as the receiver would have written it, with its claim lapsed)
    booking_id = create(student)
    event_id = f"evt_halfway_{booking_id[:8]}"
    write_received_record(stack, event_id, booking_id)

    # WHEN the reconciliation timer runs
    run_timer(stack)

    # THEN the event is applied: the booking confirmed, with its meeting
    assert settle(lambda: get(student, booking_id)["status"] == "confirmed", timeout=30)
    assert settle(lambda: get(student, booking_id)["meeting"]["status"] == "created")
    record = next(r for r in event_rows(stack) if r["RowKey"] == f"e|{event_id}")
    assert record["State"] == "applied"
    assert not [r for r in event_rows(stack) if r["RowKey"] == f"q|{event_id}"]


def write_received_record(stack, event_id: str, booking_id: str) -> None:
    from datetime import UTC, datetime, timedelta

    from shared.domain.payment import BookingRef, FactKind, PaymentFact
    from shared.storage.payment_events import (
        EventState,
        RecordedEvent,
        TablePaymentEventRepository,
    )

    service = make_table_service(StorageSettings(connection_string=stack.azurite.connection_string))
    with service:
        past = datetime.now(UTC) - timedelta(minutes=5)
        TablePaymentEventRepository(Tables(service)).record(
            RecordedEvent(
                event_id=event_id,
                type="payment_intent.succeeded",
                state=EventState.RECEIVED,
                received_at=past,
                source="webhook",
                ref=BookingRef(DEMO_TENANT_ID, booking_id),
                fact=PaymentFact(FactKind.SUCCEEDED, past, intent_id="pi_halfway", amount=4500),
                claim_until=past + timedelta(seconds=30),
            )
        )


def test_a_payment_and_its_refund_mail_both_participants_with_the_link_then_a_cancel(
    stack, student
):
    # GIVEN a student's pending booking with a tutor
    booking_id = create(student)

    # WHEN it is paid for, then fully refunded
    paid(stack, booking_id)
    link = get(student, booking_id)["meetingLink"]
    assert settle(lambda: len(mails_for(stack, booking_id)) == 2, timeout=60)
    send(stack, stripe_test.refund(DEMO_TENANT_ID, booking_id))
    assert settle(lambda: len(mails_for(stack, booking_id)) == 4, timeout=60)

    # THEN each participant got the confirmation with the join link and its invite, and then
    # the cancellation with a CANCEL invite of the same event
    mails = mails_for(stack, booking_id)
    confirmations = [m for m in mails if "Refunded" not in m["Subject"]]
    refunds = [m for m in mails if "Refunded" in m["Subject"]]
    assert sorted(m["To"].addresses[0].addr_spec for m in confirmations) == [
        "student-1@example.com",
        "tutor-1@example.com",
    ]
    assert len(refunds) == 2
    for message in confirmations:
        assert link in message.get_body(preferencelist=("plain",)).get_content()
        calendar = icalendar.Calendar.from_ical(invite(message))
        assert calendar["METHOD"] == "REQUEST"
    uids = set()
    for message in refunds:
        calendar = icalendar.Calendar.from_ical(invite(message))
        assert calendar["METHOD"] == "CANCEL"
        uids.add(str(calendar.walk("VEVENT")[0]["UID"]))
    assert len(uids) == 1
