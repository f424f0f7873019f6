"""The `attendance-poison` consumer logs the one ERROR of attendance work that stopped for good,
whether the kit poisoned it or the host moved a message that failed every delivery."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from functions.attendance import attendance_poison
from shared.storage.queues import PoisonedWork, WorkMessage


def consumed(text: str, caplog) -> dict:
    with caplog.at_level(logging.ERROR, logger="meetings.work"):
        attendance_poison(func.QueueMessage(id="m1", body=text.encode()))
    (line,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    logged: dict = json.loads(line.getMessage())
    return logged


def test_work_the_kit_poisoned_is_logged_once_with_its_cause(caplog):
    poisoned = PoisonedWork(
        "tenant-a",
        "b1",
        5,
        reason="retries_exhausted",
        step="attendance",
        error_code="handler_error",
    )

    logged = consumed(poisoned.to_text(), caplog)

    assert (logged["event"], logged["operation"], logged["errorCode"], logged["reason"]) == (
        "work_failed",
        "attendance",
        "handler_error",
        "retries_exhausted",
    )


def test_a_message_the_host_moved_is_logged_as_attendance_work(caplog):
    logged = consumed(WorkMessage("tenant-a", "b2").to_text(), caplog)

    assert (logged["bookingId"], logged["operation"], logged["reason"]) == (
        "b2",
        "attendance",
        "host_poisoned",
    )
