"""scripts/meeting_metrics.py as an operator runs it: a process reading audit records from
Azurite, printing the metrics as JSON or text, and failing with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.domain.attendance import Attendance, AttendanceSource, LessonOutcome
from shared.domain.audit import AuditEvent, AuditRecord
from shared.domain.booking import BookingStatus
from shared.settings import StorageSettings
from shared.storage.audit import TABLE as AUDIT_TABLE
from shared.storage.audit import TableAuditRepository
from shared.storage.bookings import TableBookingRepository
from shared.storage.tables import make_table_service
from tests.builders import a_booking

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 11, 21, tzinfo=UTC)
E = AuditEvent


def run_command(command_line: str, *, storage: str | None) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/python scripts/meeting_metrics.py <command_line>` from the repository root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}
    if storage is not None:
        env["AzureWebJobsStorage"] = storage
    return subprocess.run(
        [sys.executable, "scripts/meeting_metrics.py", *command_line.split()],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def at(hour: int, second: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, seconds=second)


def record(
    event: AuditEvent,
    booking_id: str,
    occurred_at: datetime,
    *,
    tenant_id: str = "demo",
    operation: str = "create",
    **fields,
) -> AuditRecord:
    return AuditRecord(
        tenant_id=tenant_id,
        booking_id=booking_id,
        event=event,
        occurred_at=occurred_at,
        record_id=uuid.uuid4().hex,
        operation=operation,
        **fields,
    )


def failed_attempt(
    booking_id: str,
    occurred_at: datetime,
    requested_at: datetime,
    graph_status: int | None,
    error_code: str,
    **fields,
) -> AuditRecord:
    return record(
        E.MEETING_ATTEMPT_FAILED,
        booking_id,
        occurred_at,
        requested_at=requested_at,
        graph_status=graph_status,
        error_code=error_code,
        **fields,
    )


@pytest.fixture
def a_day_of_records(tables) -> str:
    """A day of demo's meeting work in Azurite; returns the tables' name prefix."""
    audit = TableAuditRepository(tables)
    for r in [
        # b1: create asked at 09:00, 503 at the first attempt, linked at the second (4 s)
        failed_attempt("b1", at(9, 1), at(9), 503, "serviceUnavailable"),
        record(E.MEETING_ATTACHED, "b1", at(9, 4), requested_at=at(9), attempt=2),
        # b2: create asked at 10:00, linked at the first attempt (2 s)
        record(E.MEETING_ATTACHED, "b2", at(10, 2), requested_at=at(10)),
        # b3: create refused with 403, retries stopped (the final record names no request time)
        failed_attempt("b3", at(11, 1), at(11), 403, "graph_policy_missing"),
        record(E.MEETING_FAILED, "b3", at(11, 2), error_code="graph_policy_missing"),
        # b4: update asked at 12:00 timed out once; still open
        failed_attempt("b4", at(12, 10), at(12), None, "timeout", operation="update"),
        # outside the window, and another tenant's: not counted
        record(E.MEETING_ATTACHED, "b5", DAY - timedelta(seconds=1), requested_at=at(-1)),
        record(E.MEETING_FAILED, "b6", at(13), tenant_id="other"),
    ]:
        audit.add(r)
    name: str = tables.table(AUDIT_TABLE).table_name
    return name.removesuffix(AUDIT_TABLE)


def test_the_json_output_gives_the_four_metrics_of_the_tenant_and_window(azurite, a_day_of_records):
    # GIVEN the day of records above WHEN the command runs for demo on that day, as JSON
    done = run_command(
        "--tenant demo --since 2026-11-21T00:00:00Z --hours 24 --json "
        f"--table-prefix {a_day_of_records}",
        storage=azurite.connection_string,
    )

    # THEN it succeeds, and the figures are those worked out by hand:
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert (body["tenant"], body["since"], body["until"]) == (
        "demo",
        "2026-11-21T00:00:00Z",
        "2026-11-22T00:00:00Z",
    )
    # b1 and b2 succeeded, b3 failed, b4 is open: 2 / 3
    assert body["successRate"] == {
        "rate": pytest.approx(2 / 3),
        "succeeded": 2,
        "failed": 1,
        "pending": 1,
        "superseded": 0,
        "byOperation": {
            "create": {"succeeded": 2, "failed": 1, "pending": 0, "superseded": 0},
            "update": {"succeeded": 0, "failed": 0, "pending": 1, "superseded": 0},
        },
    }
    # latencies [2, 4] s: p50 = rank ceil(1) = 2, p95 = rank ceil(1.9) = 4
    assert body["requestToLinkLatencySeconds"] == {
        "count": 2,
        "p50": 2.0,
        "p95": 4.0,
        "max": 4.0,
        "mean": 3.0,
    }
    # b1 needed two attempts, b2 one: 1 / 2
    assert body["retryRate"] == {"rate": 0.5, "retried": 1, "succeeded": 2}
    # attempts: b1 2, b2 1, b3 1, b4 1 = 5, of which 3 failed
    assert body["graphErrorRate"] == {
        "rate": 0.6,
        "failedAttempts": 3,
        "attempts": 5,
        "errors": [
            {"graphStatus": 403, "errorCode": "graph_policy_missing", "count": 1},
            {"graphStatus": 503, "errorCode": "serviceUnavailable", "count": 1},
            {"graphStatus": None, "errorCode": "timeout", "count": 1},
        ],
    }
    assert body["missingMeetings"] == 0


def test_the_text_output_shows_the_same_figures_for_a_person(azurite, a_day_of_records):
    # GIVEN the same day WHEN the command runs without --json, the window given by both ends
    done = run_command(
        "--tenant demo --since 2026-11-21T00:00:00Z --until 2026-11-22T00:00:00Z "
        f"--table-prefix {a_day_of_records}",
        storage=azurite.connection_string,
    )

    # THEN
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Meeting metrics for tenant demo"
    assert "Success rate              66.7%  2 succeeded, 1 failed, 1 pending" in lines
    assert (
        "Request→link latency    p50 2.0 s, p95 4.0 s, max 4.0 s, mean 3.0 s (2 meetings)" in lines
    )
    assert "Graph error rate          60.0%  3 of 5 attempts failed" in lines


def test_a_prefix_without_an_audit_table_reads_as_no_records_and_creates_none(azurite):
    # GIVEN a table prefix nothing was ever written under
    prefix = f"n{uuid.uuid4().hex[:10]}"

    # WHEN the command reads it
    done = run_command(
        f"--tenant demo --hours 1 --json --table-prefix {prefix}",
        storage=azurite.connection_string,
    )

    # THEN it says so on stderr, prints empty figures, and leaves no table behind
    assert done.returncode == 0, done.stderr
    assert f"no {prefix}{AUDIT_TABLE} table" in done.stderr
    assert json.loads(done.stdout)["successRate"]["rate"] is None
    service = make_table_service(StorageSettings(connection_string=azurite.connection_string))
    with service:
        assert not [t.name for t in service.list_tables() if t.name.startswith(prefix)]


def test_a_missing_storage_setting_is_one_line_naming_it():
    # GIVEN no AzureWebJobsStorage WHEN the command runs
    done = run_command("--tenant demo --hours 1", storage=None)

    # THEN it fails with a message that names the setting, and no traceback
    assert done.returncode == 1
    assert "AzureWebJobsStorage is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
            "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;",
            "storage unreachable",
        ),
        ("not a connection string", "not a usable connection string"),
    ],
)
def test_storage_that_cannot_be_read_is_one_line_saying_why(storage, message):
    # GIVEN storage nobody answers at (port 9), or a malformed connection string
    # WHEN the command runs
    done = run_command("--tenant demo --hours 1", storage=storage)

    # THEN it fails with the reason, and no traceback
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_attendance_and_no_show_rates_are_of_the_lessons_that_started_in_the_window(
    azurite, tables, a_day_of_records
):
    # GIVEN demo's lessons of the day: 3 attended, a student and a tutor no-show, one whose
    # report never came (unknown), one still confirmed, and two outside the window or tenant
    bookings = TableBookingRepository(tables)
    outcomes = [
        LessonOutcome.ATTENDED,
        LessonOutcome.ATTENDED,
        LessonOutcome.ATTENDED,
        LessonOutcome.STUDENT_NO_SHOW,
        LessonOutcome.TUTOR_NO_SHOW,
        LessonOutcome.UNKNOWN,
    ]
    for hour, outcome in enumerate(outcomes, start=8):
        lesson(bookings, at(hour), outcome)
    bookings.add(
        a_booking(tenant_id="demo", status=BookingStatus.CONFIRMED, start=at(15), end=at(16))
    )
    lesson(bookings, DAY - timedelta(hours=2), LessonOutcome.NO_SHOW)
    lesson(bookings, at(9), LessonOutcome.NO_SHOW, tenant_id="other")

    # WHEN the command runs for demo on that day
    done = run_command(
        f"--tenant demo --since {DAY:%Y-%m-%dT%H:%M:%SZ} --hours 24 --json "
        f"--table-prefix {a_day_of_records}",
        storage=azurite.connection_string,
    )
    text = run_command(
        f"--tenant demo --since {DAY:%Y-%m-%dT%H:%M:%SZ} --hours 24 "
        f"--table-prefix {a_day_of_records}",
        storage=azurite.connection_string,
    )

    # THEN 3 of the 5 lessons with a known outcome were attended, 2 were no-shows
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attendance"] == {
        "attendanceRate": 0.6,
        "noShowRate": 0.4,
        "completed": 6,
        "known": 5,
        "byOutcome": {
            "attended": 3,
            "student_no_show": 1,
            "tutor_no_show": 1,
            "no_show": 0,
            "unknown": 1,
        },
    }
    assert (
        "Attendance rate           60.0%  3 of 5 completed lessons with a known outcome (1 unknown)"
        in text.stdout
    )
    assert (
        "No-show rate              40.0%  1 student_no_show, 1 tutor_no_show, 0 no_show"
        in text.stdout
    )


def lesson(bookings, start: datetime, outcome: LessonOutcome, tenant_id: str = "demo") -> None:
    attendance = Attendance(outcome, AttendanceSource.REPORT, start + timedelta(hours=2))
    bookings.add(
        a_booking(
            tenant_id=tenant_id,
            status=BookingStatus.COMPLETED,
            start=start,
            end=start + timedelta(hours=1),
            attendance=attendance,
        )
    )
