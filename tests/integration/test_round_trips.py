"""Storage round trips per action, counted at the wire (every request the table and queue
clients send, through their request hook), with the function app driven in process through its
function index on Azurite and Graph answered at the wire through `responses`: an approval,
a reschedule and a cancellation in at most 6, a Stripe payment in at most 8, with the Graph
calls each needs and nothing less done (the meeting, its options, the audit, the markers)."""

from __future__ import annotations

import pytest

from localdev.round_trips import AppInProcess, Measured, app_env, app_in_process
from shared.bootstrap import services
from shared.domain.booking import MAIL_WORK, MEETING_WORK
from shared.storage.wire import describe
from tests.conftest import STRIPE_SECRET

pytestmark = pytest.mark.integration


@pytest.fixture
def app(azurite, dev_issuer, monkeypatch, tmp_path):
    env = app_env(azurite.connection_string, dev_issuer, STRIPE_SECRET, tmp_path / "mail")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with app_in_process(dev_issuer, STRIPE_SECRET) as running:
        yield running


def explain(measured: Measured) -> str:
    graph = ", ".join(graph_operations(measured)) or "none"
    return f"{measured.action}: {describe(measured.storage)}; Graph: {graph}"


def graph_operations(measured: Measured) -> list[str]:
    """`POST createOrGet`, `PATCH meeting`, `DELETE meeting`, ..."""
    found = []
    for call in measured.graph:
        method, url = call.split(" ", 1)
        found.append(f"{method} {'createOrGet' if url.endswith('/createOrGet') else 'meeting'}")
    return found


def work_left(app: AppInProcess, booking_id: str) -> tuple[bool, bool]:
    """Whether the booking still carries its "needs work" and its mail markers."""
    svc = services()
    meeting = [b.booking_id for b in svc.bookings.list_marked(MEETING_WORK, app.tenant)]
    mail = [b.booking_id for b in svc.bookings.list_marked(MAIL_WORK, app.tenant)]
    return booking_id in meeting, booking_id in mail


def audit_events(app: AppInProcess, booking_id: str) -> list[str]:
    records = services().audit.list_for_booking(app.tenant, booking_id)
    return [r.event.value for r in sorted(records, key=lambda r: r.occurred_at)]


def test_an_approval_takes_at_most_6_storage_round_trips_and_2_graph_calls(app):
    booking_id = app.create()

    approved = app.approve(booking_id)

    assert approved.status == 200, approved.body
    assert approved.round_trips <= 6, explain(approved)
    assert graph_operations(approved) == ["POST createOrGet", "PATCH meeting"], explain(approved)
    # and nothing less was done: the meeting with its options, no work left, the audit kept
    assert approved.body["booking"]["meeting"]["status"] == "created"
    assert "teamsMeetingWarning" not in approved.body
    stored = services().bookings.get(app.tenant, booking_id)
    assert stored.meeting.options_applied
    assert stored.meeting.join_url
    assert stored.meeting.claim_token is None
    assert work_left(app, booking_id)[0] is False
    assert audit_events(app, booking_id) == [
        "APPOINTMENT_ONLINE_MEETING_ATTACHED",
        "APPOINTMENT_ONLINE_MEETING_UPDATED",
    ]


def test_a_reschedule_takes_at_most_6_storage_round_trips_and_1_graph_call(app):
    booking_id = app.create()
    app.approve(booking_id)

    moved = app.reschedule(booking_id)

    assert moved.status == 200, moved.body
    assert moved.round_trips <= 6, explain(moved)
    assert graph_operations(moved) == ["PATCH meeting"], explain(moved)
    stored = services().bookings.get(app.tenant, booking_id)
    assert stored.meeting.synced_start == stored.start
    assert stored.meeting.claim_token is None
    assert work_left(app, booking_id)[0] is False
    assert audit_events(app, booking_id)[-1] == "APPOINTMENT_ONLINE_MEETING_UPDATED"


def test_a_cancellation_takes_at_most_6_storage_round_trips_and_1_graph_call(app):
    booking_id = app.create()
    app.approve(booking_id)
    meeting_id = services().bookings.get(app.tenant, booking_id).meeting.meeting_id

    cancelled = app.cancel(booking_id)

    assert cancelled.status == 200, cancelled.body
    assert cancelled.round_trips <= 6, explain(cancelled)
    assert graph_operations(cancelled) == ["DELETE meeting"], explain(cancelled)
    assert meeting_id not in {m.id for m in app.emulator.live_meetings()}
    assert work_left(app, booking_id)[0] is False
    assert audit_events(app, booking_id)[-1] == "APPOINTMENT_ONLINE_MEETING_DELETED"


def test_a_payment_webhook_takes_at_most_9_storage_round_trips_and_2_graph_calls(app):
    booking_id = app.create()

    paid = app.pay(booking_id)

    assert paid.status == 200, paid.body
    assert paid.body["outcome"] == "applied"
    # 8 before lessons were read back from Teams: the confirmed lesson now also owes its
    # attendance work, whose outbox message (due at the lesson's end) is one more queue send.
    assert paid.round_trips <= 9, explain(paid)
    assert graph_operations(paid) == ["POST createOrGet", "PATCH meeting"], explain(paid)
    stored = services().bookings.get(app.tenant, booking_id)
    assert stored.status.value == "confirmed"
    assert stored.meeting.options_applied
    assert stored.meeting.join_url
    assert work_left(app, booking_id)[0] is False


def test_the_mail_marker_goes_with_the_save_that_sends_its_last_notice(app):
    # GIVEN an approved booking, which owes its participants the approval e-mail
    booking_id = app.create()
    app.approve(booking_id)
    assert work_left(app, booking_id) == (False, True)

    # WHEN the mail sweep sends it
    svc = services()
    svc.mail.sweep.run()

    # THEN the booking owes nothing, and its mail marker is gone with it
    assert not svc.bookings.get(app.tenant, booking_id).mail.pending
    assert work_left(app, booking_id) == (False, False)
