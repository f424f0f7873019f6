"""The operator's actions after a fix: replaying poisoned work (`scripts/poison.py`) and the
admins' retry route. Both start the work afresh through the converger, so a `failed` meeting
converges once the cause is gone."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from localdev.graph_emulator import POLICY_MISSING_MESSAGE, Fault
from localdev.stack import DEMO_TENANT_ID, LocalStack
from shared.storage.poisoned import WORK_KINDS
from shared.storage.queues import PoisonedWork
from tests.e2e.conftest import booking_body, caller, settle

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def admin(stack):
    return caller(stack, "admin-1", "admin")


@pytest.fixture(autouse=True)
def clean(stack):
    stack.emulator.reset()
    purge_parked(stack)
    yield
    stack.emulator.clear_faults()


def purge_parked(stack: LocalStack) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    for kind in WORK_KINDS:
        client = QueueClient.from_connection_string(stack.azurite.connection_string, kind.parked)
        with client, contextlib.suppress(ResourceNotFoundError):
            client.clear_messages()


def poison(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, as docs/operations.md gives it."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.poison", *args],
        cwd=ROOT,
        env={"AzureWebJobsStorage": stack.azurite.connection_string, "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )


def failed_booking(stack: LocalStack, admin) -> str:
    """A confirmed booking whose meeting failed for good: no Application Access Policy."""
    stack.emulator.add_fault(
        Fault(operation="createOrGet", status=403, message=POLICY_MISSING_MESSAGE)
    )
    booking_id = str(admin.call("POST", "/v1/bookings", booking_body()).json()["id"])
    approved = admin.call("POST", f"/v1/bookings/{booking_id}/approve", {}).json()
    assert approved["booking"]["meeting"]["status"] == "failed"
    return booking_id


def meeting_status(admin, booking_id: str) -> str:
    return str(admin.call("GET", f"/v1/bookings/{booking_id}").json()["meeting"]["status"])


def parked_id(stack: LocalStack, booking_id: str) -> str | None:
    for line in poison(stack, "list", "--queue", "meeting").stdout.splitlines():
        if f"booking={booking_id}" in line:
            return line.split()[0]
    return None


def kept_line(stack: LocalStack, needle: str) -> str:
    """The listed line of the message whose work names `needle`, from its queue on."""
    for line in poison(stack, "list").stdout.splitlines():
        if needle in line:
            return line.split(None, 1)[1]
    return ""


def test_a_message_poisoned_by_a_permanent_error_is_replayed_after_the_fix(stack, admin):
    # GIVEN two meetings that failed for good, their messages kept after the poison consumer's
    # record
    booking_id = failed_booking(stack, admin)
    other_id = failed_booking(stack, admin)
    assert settle(
        lambda: all(
            kept_line(stack, f"booking={b}").startswith("meeting-ops-parked")
            for b in (booking_id, other_id)
        )
    )
    message_id = parked_id(stack, booking_id)
    assert message_id is not None

    # WHEN the operator looks at it, grants the policy, and replays it
    shown = poison(stack, "show", message_id)
    stack.emulator.clear_faults()
    replayed = poison(stack, "replay", message_id)

    # THEN show printed the work, and the booking converges to a created meeting
    assert shown.returncode == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert details["kind"] == "meeting"
    assert details["queue"] == "meeting-ops-parked"
    assert details["work"]["booking_id"] == booking_id
    assert details["work"]["reason"] == "permanent"
    assert details["work"]["error_code"] == "graph_policy_missing"
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {message_id}" in replayed.stdout
    assert settle(lambda: meeting_status(admin, booking_id) == "created")
    assert parked_id(stack, booking_id) is None
    assert len(stack.emulator.live_meetings()) == 1
    # the other message is still there, at once, for its own replay
    assert parked_id(stack, other_id) is not None
    assert meeting_status(admin, other_id) == "failed"


def test_list_says_when_nothing_is_poisoned(stack):
    listed = poison(stack, "list")

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "No poisoned messages."


def test_replaying_an_unknown_message_says_so_and_changes_nothing(stack):
    replayed = poison(stack, "replay", "no-such-message")
    shown = poison(stack, "show", "no-such-message")

    assert replayed.returncode == 1
    assert "No poisoned message no-such-message" in replayed.stderr
    assert shown.returncode == 1
    assert "No poisoned message no-such-message" in shown.stderr


def test_poisoned_mail_is_listed_and_replay_all_puts_it_back_on_the_mail_queue(stack):
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    # GIVEN mail work that stopped for good, in mail-poison
    work = PoisonedWork(DEMO_TENANT_ID, "booking-mail-1", 2, reason="retries_exhausted")
    with QueueClient.from_connection_string(
        stack.azurite.connection_string,
        "mail-poison",
        message_encode_policy=TextBase64EncodePolicy(),
    ) as client:
        client.send_message(work.to_text())
    assert settle(lambda: kept_line(stack, "booking=booking-mail-1").startswith("mail-parked"))

    # WHEN the operator replays every mail message
    replayed = poison(stack, "replay", "--all", "--queue", "mail")

    # THEN the message is gone from the poisoned ones, its work back on the mail queue
    assert replayed.returncode == 0, replayed.stderr
    assert "mail work re-enqueued" in replayed.stdout
    assert poison(stack, "list", "--queue", "mail").stdout.strip() == "No poisoned messages."


def test_a_message_that_is_not_work_is_refused_by_replay_and_removed_by_discard(stack):
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    # GIVEN a message in the parked queue that is not meeting work
    with QueueClient.from_connection_string(
        stack.azurite.connection_string,
        "meeting-ops-parked",
        message_encode_policy=TextBase64EncodePolicy(),
    ) as client:
        message_id = client.send_message("not json").id

    # WHEN the operator replays everything, then discards it
    replayed = poison(stack, "replay", "--all")
    discarded = poison(stack, "discard", message_id)

    # THEN the replay names it and leaves it; discard removes it
    assert replayed.returncode == 1
    assert f"not replayed {message_id}: the message is not meeting work" in replayed.stderr
    assert discarded.returncode == 0, discarded.stderr
    assert poison(stack, "list").stdout.strip() == "No poisoned messages."


def test_an_admin_retries_a_failed_meeting_after_the_fix(stack, admin):
    # GIVEN a booking whose meeting failed for good
    booking_id = failed_booking(stack, admin)
    stack.emulator.clear_faults()

    # WHEN an admin retries it
    retried = admin.call("POST", f"/v1/bookings/{booking_id}/retry-meeting")

    # THEN 202 with the booking, whose meeting is made through the same converger
    assert retried.status_code == 202, retried.text
    assert retried.json()["booking"]["id"] == booking_id
    assert settle(lambda: meeting_status(admin, booking_id) == "created")
    assert len(stack.emulator.live_meetings()) == 1


def test_a_retry_with_nothing_to_retry_is_409(stack, admin):
    pending = admin.call("POST", "/v1/bookings", booking_body()).json()["id"]
    created = admin.call("POST", "/v1/bookings", booking_body()).json()["id"]
    admin.call("POST", f"/v1/bookings/{created}/approve", {})

    for booking_id in (pending, created):
        refused = admin.call("POST", f"/v1/bookings/{booking_id}/retry-meeting")

        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "no_meeting_to_retry"


def test_a_retry_of_another_tenants_booking_is_404(stack, admin):
    booking_id = failed_booking(stack, admin)
    stranger = caller(stack, "admin-9", "admin", tenant="tenant-other")

    refused = stranger.call("POST", f"/v1/bookings/{booking_id}/retry-meeting")

    assert refused.status_code == 404
    assert refused.json() == {"error": "Booking not found", "code": "not_found"}
    assert meeting_status(admin, booking_id) == "failed"
