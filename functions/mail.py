"""The `mail` queue (SPEC §8): send what the booking a message names owes; its poison queue; and
the timer's sweep for mail whose message was lost."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import telemetry
from shared.storage.queue_names import MAIL_POISON_QUEUE, MAIL_QUEUE

bp = func.Blueprint()
logger = logging.getLogger("meetings.queue")


@bp.function_name("mail")
@bp.queue_trigger(arg_name="msg", queue_name=MAIL_QUEUE, connection="AzureWebJobsStorage")
def mail(msg: func.QueueMessage) -> None:
    from shared.bootstrap import services
    from shared.storage.queues import BadMessageError, WorkMessage

    try:
        work = WorkMessage.from_text(msg.get_body())
    except BadMessageError as exc:
        logger.error("mail message %s dropped: %s", msg.id, exc)
        return
    with telemetry.span(
        "mail process",
        kind="consumer",
        parent=work.traceparent,
        tenant=work.tenant_id,
        bookingId=work.booking_id,
    ):
        services().mail.worker.handle(work)


@bp.function_name("mail_poison")
@bp.queue_trigger(arg_name="msg", queue_name=MAIL_POISON_QUEUE, connection="AzureWebJobsStorage")
def mail_poison(msg: func.QueueMessage) -> None:
    from shared.bootstrap import services
    from shared.mail.delivery import record_mail_poisoned
    from shared.storage.queues import BadMessageError, PoisonedWork

    try:
        poisoned = PoisonedWork.from_text(msg.get_body())
    except BadMessageError as exc:
        logger.error("mail-poison message %s is not mail work: %s", msg.id, exc)
        return
    # Kept for the operator's replay after a fix (scripts/poison.py).
    services().poisoned["mail"].park(msg.get_body().decode("utf-8"))
    record_mail_poisoned(poisoned)


@bp.function_name("mail_sweep")
@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def mail_sweep(timer: func.TimerRequest) -> None:
    from shared.bootstrap import services

    services().mail.sweep.run()
