"""The `attendance` queue: after a lesson, read its Teams attendance report and complete the
booking (shared/services/attendance.py, a kind of work on the kit); and its poison queue, whose
consumer logs the one ERROR of attendance work that stopped for good."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import telemetry
from shared.storage.queue_names import ATTENDANCE_POISON_QUEUE, ATTENDANCE_QUEUE

bp = func.Blueprint()
logger = logging.getLogger("meetings.queue")


@bp.function_name("attendance")
@bp.queue_trigger(arg_name="msg", queue_name=ATTENDANCE_QUEUE, connection="AzureWebJobsStorage")
def attendance(msg: func.QueueMessage) -> None:
    from shared.bootstrap import services
    from shared.domain.completion import ATTENDANCE_WORK
    from shared.storage.queues import BadMessageError, WorkMessage

    try:
        work = WorkMessage.from_text(msg.get_body())
    except BadMessageError as exc:
        logger.error("attendance message %s dropped: %s", msg.id, exc)
        return
    with telemetry.span(
        "attendance process",
        kind="consumer",
        parent=work.traceparent,
        tenant=work.tenant_id,
        bookingId=work.booking_id,
    ):
        services().kinds.handle(ATTENDANCE_WORK, work)


@bp.function_name("attendance_poison")
@bp.queue_trigger(
    arg_name="msg", queue_name=ATTENDANCE_POISON_QUEUE, connection="AzureWebJobsStorage"
)
def attendance_poison(msg: func.QueueMessage) -> None:
    from dataclasses import replace

    from shared.domain.completion import ATTENDANCE_WORK
    from shared.storage.queues import BadMessageError, PoisonedWork
    from shared.work.kinds import record_kind_poisoned

    try:
        poisoned = PoisonedWork.from_text(msg.get_body())
    except BadMessageError as exc:
        logger.error("attendance-poison message %s is not attendance work: %s", msg.id, exc)
        return
    # The host moves a message here after its dequeues (storage down): it names no step.
    record_kind_poisoned(replace(poisoned, step=poisoned.step or ATTENDANCE_WORK))
