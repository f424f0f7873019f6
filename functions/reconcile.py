"""The reconciliation timer (SPEC §7): check each tenant's Microsoft credential when its check is
due (shared/services/credential_health.py); converge every booking marked "needs work", across
all tenants, and verify the meetings of bookings that start soon against Teams; sweep every
other registered kind of work (shared/work/kinds.py) for lost messages; record the reminders
due before sessions (shared/services/reminders.py); then finish
payment events whose processing stopped half-way and recover those Stripe failed to deliver
(SPEC §6); and remove organizer checks' throw-away meetings that a dry run could not delete."""

from __future__ import annotations

import azure.functions as func

from shared import telemetry

bp = func.Blueprint()


@bp.function_name("reconcile")
@bp.timer_trigger(schedule="%RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    from shared.bootstrap import services

    with telemetry.span("reconcile run"):
        svc = services()
        try:
            svc.credential_health.run()  # never raises
            try:
                svc.reconciler.run()
                svc.kinds.sweep()  # the registered kinds of work beyond meetings and mail
            finally:
                # Reminders do not wait on meetings either: a failed sweep still lets them go.
                svc.reminders.run()  # a tenant's storage error is logged, not raised
        finally:
            # Payments do not wait on meetings: if the sweep failed, recovery still runs.
            svc.payments.recover()
            svc.check_meetings.sweep()  # never raises
