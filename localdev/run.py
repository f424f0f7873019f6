"""`make run`: the whole service on this machine, with no Azure or Microsoft account.

Starts Azurite (data kept in .local/azurite), the Microsoft Graph emulator with a demo directory
and organizer, and the Functions host on http://localhost:7071; prints how to call it; Ctrl-C
stops everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from localdev.azurite import REPO_ROOT
from localdev.stack import DEMO_TENANT_ID, ORGANIZER_UPN, local_stack, port_is_free


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="Functions host port")
    parser.add_argument("--emulator-port", type=int, default=7443)
    parser.add_argument("--fresh", action="store_true", help="keep no data between runs")
    args = parser.parse_args()
    for name, port in (("--port", args.port), ("--emulator-port", args.emulator_port)):
        if not port_is_free(port):
            sys.exit(f"Port {port} is taken; pass {name} with another port.")
    azurite_ports = (10000, 10001, 10002)
    if not all(port_is_free(p) for p in azurite_ports):
        print("Azurite's usual ports 10000-10002 are taken; using free ones.")
        azurite_ports = (0, 0, 0)
    state = REPO_ROOT / ".local"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("Starting Azurite, the Microsoft Graph emulator and the Functions host...", flush=True)
    with local_stack(
        state_dir=state,
        host_port=args.port,
        emulator_port=args.emulator_port,
        azurite_ports=azurite_ports,
        persist=not args.fresh,
        echo=True,
    ) as stack:
        admin = stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
        print(
            _banner(
                stack.host_url,
                stack.emulator.base_url,
                stack.tls.bundle_file,
                admin,
                stack.env["RECONCILE_SCHEDULE"],
                stack.azurite.connection_string,
                stack.env["MAIL_FOLDER"],
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("\nStopping...", flush=True)


def _banner(
    host_url: str,
    emulator_url: str,
    bundle: Path,
    admin_token: str,
    schedule: str,
    storage: str,
    mail_folder: str,
) -> str:
    return f"""
================================================================================
 Meetings service running at {host_url}/api   (tenant "{DEMO_TENANT_ID}")

   curl {host_url}/api/v1/health

 Tokens (development issuer; any role: admin staff tutor student parent client):
   ADMIN={admin_token}
   STUDENT=$(.venv/bin/python -m localdev.devauth --role student --user student-1)
   curl -H "Authorization: Bearer $ADMIN" {host_url}/api/v1/teams-meetings/capability
 A whole booking, approved, moved and cancelled: docs/local.md ("A curl session").

 Background functions (served by the same host):
   meeting_ops         queue meeting-ops: converges each booking whose meeting needs work
   meeting_ops_poison  queue meeting-ops-poison: records work that stopped for good
   reconcile           timer "{schedule}": marked bookings, then pre-start checks
   run the timer now:  curl -X POST {host_url}/admin/functions/reconcile
   mail                queue mail: sends the e-mails and invites a booking owes
   mail_poison         queue mail-poison: logs mail that could not be delivered
   mail_sweep          timer "{schedule}": mail whose queue message was lost
 E-mails (MAIL_TRANSPORT=folder): {mail_folder}/*.eml, each with its invite.ics
 Meetings that repair themselves under faults: docs/local.md ("When Graph fails").

 Stripe webhook: {host_url}/api/v1/payments/webhook
   (signing secret: .local/stripe-webhook-secret)
   a signed payment for a booking:
     .venv/bin/python -m localdev.stripe_events payment-succeeded --booking <id>
   also: refund, checkout-completed, payment-failed, forged  (docs/local.md "A paid booking")

 Microsoft Graph emulator: {emulator_url}  (organizer {ORGANIZER_UPN})
   curl --cacert {bundle} {emulator_url}/_emulator/state
   inject a fault:  curl --cacert {bundle} -X POST {emulator_url}/_emulator/faults \\
                      -d '{{"operation": "createOrGet", "status": 503, "count": 1}}'

 Data: {REPO_ROOT / ".local"} (make run ARGS=--fresh to start empty). Ctrl-C stops everything.
 Metrics: AzureWebJobsStorage="{storage}" \\
            .venv/bin/python scripts/meeting_metrics.py --tenant {DEMO_TENANT_ID} --hours 24
================================================================================
"""


if __name__ == "__main__":
    main()
