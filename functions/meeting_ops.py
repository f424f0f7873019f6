"""The `meeting-ops` queue (SPEC §7): converge the meeting of the booking a message names; and
its poison queue, whose consumer records work that stopped for good and keeps it for a replay."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import telemetry
from shared.storage.queue_names import MEETING_OPS_POISON_QUEUE, MEETING_OPS_QUEUE

bp = func.Blueprint()
logger = logging.getLogger("meetings.queue")


@bp.function_name("meeting_ops")
@bp.queue_trigger(arg_name="msg", queue_name=MEETING_OPS_QUEUE, connection="AzureWebJobsStorage")
def meeting_ops(msg: func.QueueMessage) -> None:
    from shared.bootstrap import services
    from shared.storage.queues import BadMessageError, WorkMessage

    try:
        work = WorkMessage.from_text(msg.get_body())
    except BadMessageError as exc:
        # Retrying cannot make it readable: drop it, loudly.
        logger.error("meeting-ops message %s dropped: %s", msg.id, exc)
        return
    with telemetry.span(
        "meeting-ops process",
        kind="consumer",
        parent=work.traceparent,
        tenant=work.tenant_id,
        bookingId=work.booking_id,
    ):
        svc = services()
        result = svc.worker.handle(work)
        if result is not None:
            # Mail that waited for this meeting (or owes its link) can go now.
            svc.follow_up.after_meeting(result.booking)


@bp.function_name("meeting_ops_poison")
@bp.queue_trigger(
    arg_name="msg", queue_name=MEETING_OPS_POISON_QUEUE, connection="AzureWebJobsStorage"
)
def meeting_ops_poison(msg: func.QueueMessage) -> None:
    from shared.bootstrap import services
    from shared.meetings.worker import record_poisoned
    from shared.storage.queues import BadMessageError, PoisonedWork

    try:
        poisoned = PoisonedWork.from_text(msg.get_body())
    except BadMessageError as exc:
        logger.error("meeting-ops-poison message %s is not meeting work: %s", msg.id, exc)
        return
    svc = services()
    # Kept first, for the operator's replay after a fix (scripts/poison.py): if that fails,
    # the host retries this message, and nothing was recorded twice.
    svc.poisoned["meeting"].park(msg.get_body().decode("utf-8"))
    record_poisoned(poisoned, svc.audit, svc.clock())
