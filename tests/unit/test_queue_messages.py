"""Queue messages: what the worker and the poison consumer accept, and what they refuse."""

from __future__ import annotations

import json

import pytest

from shared.storage.queues import BadMessageError, PoisonedWork, WorkMessage


def test_work_reads_back_what_it_wrote():
    work = WorkMessage("tenant-a", "b1")

    assert WorkMessage.from_text(work.to_text()) == work
    assert WorkMessage.from_text(work.to_text().encode()) == work


def test_an_older_message_with_a_round_still_reads():
    assert WorkMessage.from_text('{"tenantId":"t","bookingId":"b","round":3}') == WorkMessage(
        "t", "b"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"text"',
        b"{}",
        b'{"tenantId": 5, "bookingId": "b"}',
        b'{"tenantId": "t"}',
        b'{"tenantId": "a/b", "bookingId": "b"}',
        b'{"tenantId": "t", "bookingId": "' + b"x" * 600 + b'"}',
        json.dumps({"tenantId": "\ud800", "bookingId": "b"}).encode(),
        b"[" * 50_000 + b"]" * 50_000,
        b'{"tenantId": "t", "bookingId": "b", "pad": "' + b"x" * 10_000 + b'"}',
    ],
    ids=[
        "text",
        "bytes",
        "list",
        "string",
        "empty",
        "number-id",
        "missing",
        "slash",
        "long-id",
        "surrogate",
        "deep",
        "huge",
    ],
)
def test_anything_else_is_a_bad_message(body):
    with pytest.raises(BadMessageError):
        WorkMessage.from_text(body)
    with pytest.raises(BadMessageError):
        PoisonedWork.from_text(body)


def test_poisoned_work_keeps_only_sane_details():
    text = json.dumps(
        {
            "tenantId": "t",
            "bookingId": "b",
            "round": 2,
            "reason": "permanent",
            "step": "create",
            "graphStatus": 2**70,
            "errorCode": ["x"],
        }
    )

    poisoned = PoisonedWork.from_text(text)

    assert (poisoned.round, poisoned.reason, poisoned.step) == (2, "permanent", "create")
    assert (poisoned.graph_status, poisoned.error_code) == (None, None)
