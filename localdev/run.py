"""`make run`: the whole service on this machine, with no Azure or Microsoft account.

Starts Azurite (data kept in .local/azurite), the Microsoft Graph emulator with a demo directory
and organizer, and the Functions host on http://localhost:7071; prints how to call it; Ctrl-C
stops everything it started.

`make services` (`--services-only`) starts Azurite and the emulator alone, for a Functions host
of one's own (Core Tools' `func start`), and prints the local.settings.json that points the app
at them (`--write-settings` writes it instead).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from localdev.azurite import REPO_ROOT
from localdev.stack import (
    DEMO_TENANT_ID,
    ORGANIZER_UPN,
    LocalServices,
    local_services,
    local_settings_document,
    local_stack,
    port_is_free,
)

DEFAULT_STATE = REPO_ROOT / ".local"
DEFAULT_SETTINGS_FILE = REPO_ROOT / "local.settings.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="Functions host port")
    parser.add_argument("--emulator-port", type=int, default=7443)
    parser.add_argument("--fresh", action="store_true", help="keep no data between runs")
    parser.add_argument(
        "--services-only",
        action="store_true",
        help="start Azurite and the Graph emulator only, for `func start`",
    )
    parser.add_argument(
        "--write-settings",
        nargs="?",
        type=Path,
        const=DEFAULT_SETTINGS_FILE,
        metavar="FILE",
        help="with --services-only: write local.settings.json (or FILE) instead of printing it",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE,
        help="where data, certificates and local secrets are kept (default .local)",
    )
    parser.add_argument(
        "--free-ports", action="store_true", help="take free ports instead of the usual ones"
    )
    args = parser.parse_args()
    if args.write_settings and not args.services_only:
        parser.error("--write-settings goes with --services-only")
    ports = {"--emulator-port": 0 if args.free_ports else args.emulator_port}
    if not args.services_only:
        ports["--port"] = 0 if args.free_ports else args.port
    for name, port in ports.items():
        if port and not port_is_free(port):
            sys.exit(f"Port {port} is taken; pass {name} with another port.")
    azurite_ports = (0, 0, 0) if args.free_ports else (10000, 10001, 10002)
    if not all(port_is_free(p) for p in azurite_ports if p):
        print("Azurite's usual ports 10000-10002 are taken; using free ones.")
        azurite_ports = (0, 0, 0)
    state: Path = args.state_dir.resolve()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.services_only:
        _serve_services(args, state, ports["--emulator-port"], azurite_ports, stop)
        return
    print("Starting Azurite, the Microsoft Graph emulator and the Functions host...", flush=True)
    with local_stack(
        state_dir=state,
        host_port=ports["--port"],
        emulator_port=ports["--emulator-port"],
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
                _mail_line(stack.env, stack.emulator.base_url, stack.tls.bundle_file),
                state,
            ),
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("\nStopping...", flush=True)


def _serve_services(
    args: argparse.Namespace,
    state: Path,
    emulator_port: int,
    azurite_ports: tuple[int, int, int],
    stop: threading.Event,
) -> None:
    print("Starting Azurite and the Microsoft Graph emulator...", flush=True)
    with local_services(
        state_dir=state,
        emulator_port=emulator_port,
        azurite_ports=azurite_ports,
        persist=not args.fresh,
    ) as services:
        target: Path | None = args.write_settings
        existing = _read_settings(target) if target else None
        document = local_settings_document(services, existing)
        if target is not None:
            target.write_text(json.dumps(document, indent=2) + "\n")
            target.chmod(0o600)
            settings = f" Wrote {target} (the values below are in it).\n"
        else:
            settings = (
                " Put this in local.settings.json (or start with --write-settings):\n"
                + json.dumps(document, indent=2)
                + "\n"
            )
        print(_services_banner(services, settings, state), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        print("\nStopping...", flush=True)


def _read_settings(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        existing: dict[str, Any] = json.loads(path.read_text())
    except ValueError:
        sys.exit(f"{path} is not JSON; move it aside or fix it, then start again.")
    return existing


def _services_banner(services: LocalServices, settings: str, state: Path) -> str:
    admin = services.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)
    a = services.azurite
    storage = f"blob {a.blob_port}, queue {a.queue_port}, table {a.table_port} on 127.0.0.1"
    emulator = services.emulator.base_url
    return f"""
================================================================================
 Local services for a Functions host of your own (Core Tools: func start)

   Azurite         {storage}
   Graph emulator  {emulator}  (organizer {ORGANIZER_UPN}; trust {services.tls.bundle_file})
   Demo tenant "{DEMO_TENANT_ID}" seeded; development token issuer in {state / "dev-auth"}

{settings}
 Then, from the repository, in another terminal:
   source .venv/bin/activate && func start
   curl http://localhost:7071/api/v1/health
 Tokens (development issuer; other roles: python -m localdev.devauth --role student):
   ADMIN={admin}
 Stripe events signed with the local secret: .venv/bin/python -m localdev.stripe_events
 Data: {state} (ARGS=--fresh to start empty). Ctrl-C stops the services.
================================================================================
"""


def _mail_line(env: dict[str, str], emulator_url: str, bundle: Path) -> str:
    """Where the e-mails go, for the transport actually in use."""
    transport = env.get("MAIL_TRANSPORT") or "folder"
    if transport == "graph":
        return (
            "E-mails (MAIL_TRANSPORT=graph): sent with the emulator's sendMail; see them:\n"
            f"   curl --cacert {bundle} {emulator_url}/_emulator/state | jq .mail"
        )
    if transport == "smtp":
        where = f"{env.get('MAIL_SMTP_HOST', '?')}:{env.get('MAIL_SMTP_PORT', '587')}"
        return f"E-mails (MAIL_TRANSPORT=smtp): sent to the SMTP server {where}"
    folder = env.get("MAIL_FOLDER")
    return f"E-mails (MAIL_TRANSPORT=folder): {folder}/*.eml, each with its invite.ics"


def _banner(
    host_url: str,
    emulator_url: str,
    bundle: Path,
    admin_token: str,
    schedule: str,
    storage: str,
    mail: str,
    state: Path,
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
   meeting_ops_poison  queue meeting-ops-poison: records work that stopped for good, keeps it
   reconcile           timer "{schedule}": marked bookings, then pre-start checks
   run the timer now:  curl -X POST {host_url}/admin/functions/reconcile
   mail                queue mail: sends the e-mails and invites a booking owes
   mail_poison         queue mail-poison: logs mail that could not be delivered, keeps it
   mail_sweep          timer "{schedule}": mail whose queue message was lost
   poisoned work, after a fix:  .venv/bin/python -m scripts.poison list|show ID|replay ID
     (with AzureWebJobsStorage as for Metrics below; docs/operations.md "Poisoned work")
 {mail}
 Meetings that repair themselves under faults: docs/local.md ("When Graph fails").

 Stripe webhook: {host_url}/api/v1/payments/webhook
   (signing secret: {state / "stripe-webhook-secret"})
   a signed payment for a booking:
     .venv/bin/python -m localdev.stripe_events payment-succeeded --booking <id>
   also: refund, checkout-completed, payment-failed, forged  (docs/local.md "A paid booking")

 Microsoft Graph emulator: {emulator_url}  (organizer {ORGANIZER_UPN})
   curl --cacert {bundle} {emulator_url}/_emulator/state
   inject a fault:  curl --cacert {bundle} -X POST {emulator_url}/_emulator/faults \\
                      -d '{{"operation": "createOrGet", "status": 503, "count": 1}}'

 Data: {state} (make run ARGS=--fresh to start empty). Ctrl-C stops everything.
 Metrics: AzureWebJobsStorage="{storage}" \\
            .venv/bin/python scripts/meeting_metrics.py --tenant {DEMO_TENANT_ID} --hours 24
================================================================================
"""


if __name__ == "__main__":
    main()
