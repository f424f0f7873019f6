"""Meetings converge whatever Graph does, over real HTTP: the local Functions host (HTTP routes,
the meeting-ops queue trigger and the reconciliation timer), Azurite and the Graph emulator.

The stack runs with a short retry schedule (1 s rounds) and a 2 s inline budget, so that what
takes minutes in production takes seconds here; the logic is the same.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault
from localdev.stack import DEMO_TENANT_ID, local_stack
from shared.domain.audit import AuditEvent
from shared.settings import StorageSettings
from shared.storage.audit import TableAuditRepository
from shared.storage.tables import Tables, make_table_service
from tests.e2e.conftest import QUIET_TIMER, booking_body, future_slot, settle

pytestmark = pytest.mark.e2e

FAST = {
    "MEETING_RETRY_SCHEDULE": "1,1,2",
    "MEETING_INLINE_BUDGET_SECONDS": "2",
    **QUIET_TIMER,
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with local_stack(state_dir=tmp_path_factory.mktemp("stack"), extra_env=FAST) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_emulator(stack):
    stack.emulator.reset()
    yield
    stack.emulator.clear_faults()


def create(who, days=3, **changes):
    start, end = future_slot(days=days)
    body = booking_body(**changes)
    body.update(startDateTime=start, endDateTime=end)
    response = who.call("POST", "/v1/bookings", body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def act(who, booking_id, action, body=None):
    response = who.call("POST", f"/v1/bookings/{booking_id}/{action}", body or {})
    assert response.status_code == 200, response.text
    return response.json()


def get(who, booking_id):
    return who.call("GET", f"/v1/bookings/{booking_id}").json()


def live_by_booking(stack):
    """Live meetings in the emulator per booking id (from the externalId)."""
    found: Counter[str] = Counter()
    for meeting in stack.emulator.live_meetings():
        found[meeting.external_id.split(":")[1]] += 1
    return found


def run_timer(stack):
    response = requests.post(f"{stack.host_url}/admin/functions/reconcile", timeout=60)
    assert response.status_code == 202


def test_two_hundred_approvals_under_graph_faults_end_with_one_meeting_each(stack, staff):
    # GIVEN Graph fails 30 % of meeting calls with 503 and 10 % with 429 (Retry-After 1.5)
    for operation in ("createOrGet", "patchMeeting"):
        stack.emulator.add_fault(Fault(operation=operation, status=503, share=0.3))
        stack.emulator.add_fault(
            Fault(operation=operation, status=429, retry_after="1.5", share=0.1 / 0.7)
        )
    ids = [create(staff) for _ in range(200)]

    # WHEN staff approve them all, eight at a time
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: act(staff, i, "approve"), ids))
    warned = [a for a in answers if "teamsMeetingWarning" in a]
    assert all("retried automatically" in a["teamsMeetingWarning"] for a in warned)
    assert warned, "the faults should have made some inline attempts fail"

    # THEN once the queue drains: one meeting per booking, linked, at the booking's times
    assert settle(lambda: len(stack.emulator.live_meetings()) >= 200, timeout=120)
    assert settle(
        lambda: all(get(staff, i)["meeting"]["status"] == "created" for i in ids), timeout=60
    )
    per_booking = live_by_booking(stack)
    assert len(stack.emulator.live_meetings()) == 200
    assert set(per_booking) == set(ids)
    assert max(per_booking.values()) == 1
    links = {m.id: m.join_url for m in stack.emulator.live_meetings()}
    for booking_id in ids:
        booking = get(staff, booking_id)
        assert links[booking["meeting"]["meetingId"]] == booking["meetingLink"]


def test_a_permanent_refusal_fails_after_one_call_and_is_recorded(stack, staff):
    # GIVEN no Application Access Policy for the organizer
    stack.emulator.add_fault(
        Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE)
    )
    booking_id = create(staff)

    # WHEN the booking is approved
    answer = act(staff, booking_id, "approve")

    # THEN the approval stands, the meeting is failed at once, nothing retries it
    assert "Application Access Policy" in answer["teamsMeetingWarning"]
    assert "will not be retried" in answer["teamsMeetingWarning"]
    assert answer["booking"]["meeting"]["status"] == "failed"
    audit = TableAuditRepository(
        Tables(
            make_table_service(StorageSettings(connection_string=stack.azurite.connection_string))
        )
    )
    assert settle(
        lambda: (
            AuditEvent.MEETING_FAILED
            in [r.event for r in audit.list_for_booking(DEMO_TENANT_ID, booking_id)]
        )
    )
    time.sleep(3)  # past the outbox message's delay: it finds nothing to do
    assert stack.emulator.calls["createOrGet"] == 1
    assert any('"event":"meeting_work_failed"' in line for line in stack.host_output)


def test_a_lost_reply_is_retried_into_the_same_meeting(stack, staff):
    # GIVEN Graph makes the meeting but the answer is lost
    stack.emulator.add_fault(Fault(operation="createOrGet", status=504, lost_reply=True, count=1))
    booking_id = create(staff)

    answer = act(staff, booking_id, "approve")

    # THEN the booking says pending, and the retry links the meeting Teams made
    assert answer["booking"]["meeting"]["status"] == "pending"
    (made,) = stack.emulator.live_meetings()
    assert settle(lambda: get(staff, booking_id)["meeting"]["status"] == "created")
    assert get(staff, booking_id)["meeting"]["meetingId"] == made.id
    assert len(stack.emulator.live_meetings()) == 1


def test_approve_racing_cancel_never_leaves_a_cancelled_booking_with_a_meeting(stack, staff):
    # GIVEN Graph takes 300 ms to make a meeting
    stack.emulator.add_fault(Fault(operation="createOrGet", latency_ms=300))
    rng = random.Random(7)  # noqa: S311 (test timing, not secrets)
    ids = []
    approvals: list[int] = []

    def approve(booking_id: str) -> None:
        # The cancel may land first: then the approval is refused (409), which is right too.
        response = staff.call("POST", f"/v1/bookings/{booking_id}/approve", {})
        approvals.append(response.status_code)

    # WHEN each of 20 bookings is approved and cancelled 0-400 ms later
    for _ in range(20):
        booking_id = create(staff)
        ids.append(booking_id)
        approving = threading.Thread(target=approve, args=(booking_id,))
        approving.start()
        time.sleep(rng.uniform(0, 0.4))
        act(staff, booking_id, "cancel")
        approving.join()
    assert set(approvals) <= {200, 409}, approvals

    # THEN, once the work drains, no cancelled booking has a live meeting
    assert settle(lambda: not live_by_booking(stack), timeout=60), live_by_booking(stack)
    # (the races did happen: meetings were made while cancels landed, and removed after)
    assert stack.emulator.statuses["createOrGet:201"] > 0
    assert stack.emulator.calls["deleteMeeting"] >= stack.emulator.statuses["createOrGet:201"]
    assert settle(
        lambda: all(get(staff, i)["meeting"]["status"] in ("none", "deleted") for i in ids)
    )
    assert all(get(staff, i)["status"] == "cancelled" for i in ids)


def test_two_quick_reschedules_end_with_teams_at_the_last_times(stack, staff):
    booking_id = create(staff)
    act(staff, booking_id, "approve")
    (meeting,) = stack.emulator.live_meetings()
    # GIVEN the first PATCH is slow
    stack.emulator.add_fault(Fault(operation="patchMeeting", latency_ms=600, count=1))
    first, second = future_slot(days=5), future_slot(days=6, hours=2)

    # WHEN two reschedules land 150 ms apart
    moving = threading.Thread(
        target=act,
        args=(staff, booking_id, "reschedule"),
        kwargs={"body": {"startDateTime": first[0], "endDateTime": first[1]}},
    )
    moving.start()
    time.sleep(0.15)
    act(staff, booking_id, "reschedule", {"startDateTime": second[0], "endDateTime": second[1]})
    moving.join()

    # THEN Teams ends at the second times, the booking says created, and the link is the same
    assert settle(lambda: get(staff, booking_id)["meeting"]["status"] == "created")
    assert meeting.start.startswith(second[0][:-1])
    assert meeting.end.startswith(second[1][:-1])
    booking = get(staff, booking_id)
    assert (booking["startDateTime"], booking["endDateTime"]) == second
    assert booking["meetingLink"] == meeting.join_url
    # the options PATCH, the slow first move, then the second move by the same worker
    assert meeting.patches == 3


def test_a_cancel_while_the_create_waits_in_the_queue_makes_no_meeting(stack, staff):
    # GIVEN the inline create is throttled, so the creation waits for its retry
    stack.emulator.add_fault(Fault(operation="createOrGet", status=429, retry_after="1.5", count=1))
    booking_id = create(staff)
    approved = act(staff, booking_id, "approve")
    assert "throttling" in approved["teamsMeetingWarning"]

    # WHEN the booking is cancelled before the retry
    cancelled = act(staff, booking_id, "cancel")

    # THEN no meeting is ever made, and nothing is left to do
    assert cancelled["booking"]["meeting"]["status"] == "none"
    time.sleep(4)  # past the queued message and the Retry-After
    assert stack.emulator.meetings == {}
    assert stack.emulator.calls["createOrGet"] == 1


def test_a_reschedule_while_the_create_waits_makes_the_meeting_at_the_final_times(stack, staff):
    stack.emulator.add_fault(Fault(operation="createOrGet", status=503, count=1))
    booking_id = create(staff)
    act(staff, booking_id, "approve")
    start, end = future_slot(days=9)

    act(staff, booking_id, "reschedule", {"startDateTime": start, "endDateTime": end})

    assert settle(lambda: get(staff, booking_id)["meeting"]["status"] == "created")
    (meeting,) = stack.emulator.live_meetings()
    assert meeting.start.startswith(start[:-1])
    assert meeting.end.startswith(end[:-1])
