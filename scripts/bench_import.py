"""Cold start: what indexing the function app costs over azure.functions alone, and what the
first request costs over a warm one.

Both run from a copy of the checkout's tracked files with no `.pyc` (as a fresh deployment
has: its package is read-only, so the worker compiles every module it imports) and with
`python -B`, so that no run leaves a `.pyc` for the next.

- Import: fresh processes run `import function_app` and `import azure.functions` in turn (A B A
  B ...); each process is timed whole, from start to exit. Prints the median of each and the
  median of the pair-by-pair ratios (1.0 would mean the app adds nothing to the library).
- First request: against Azurite and the Graph emulator (localdev), each fresh process imports
  function_app and approves bookings through the function index, one after another, timing each
  call in the process (wall and the process's CPU time, which a busy machine disturbs less):
  the first pays for importing and building the clients, signing in to Microsoft and looking
  up the organizer; the rest are warm. Prints the median first, the median warm, and the
  median of the per-process ratios first / warm.

    .venv/bin/python scripts/bench_import.py [--runs 15] [--processes 7] [--approvals 6]
        [--only import|first-request] [--absent aiohttp]

`--absent aiohttp` measures the first request as a deployment built from requirements.txt has
it: here aiohttp is installed for checkov alone, and the queue SDK imports it when present.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Settings that let function_app index (storage is never reached by an import).
IMPORT_ENV = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AUTH_ISSUER": "https://issuer.example",
    "AUTH_AUDIENCE": "meetings",
    "AUTH_JWKS_URL": "https://issuer.example/jwks",
    "STRIPE_WEBHOOK_SECRET": f"whsec_{secrets.token_hex(16)}",
}


# Left out of the copy: compiled files, the installs (the copy runs with this interpreter) and
# tool caches.
NOT_COPIED = shutil.ignore_patterns(
    "__pycache__", ".git", ".venv", "node_modules", ".local", ".*_cache"
)


@contextmanager
def fresh_copy() -> Iterator[Path]:
    """The checkout in a new folder, without a `.pyc`."""
    with tempfile.TemporaryDirectory(prefix="cold-start-") as folder:
        copy = Path(folder) / "app"
        shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)
        yield copy


def whole_process_seconds(code: str, cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of a fresh process running `code`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-B", "-c", code], cwd=cwd, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench_import(copy: Path, runs: int) -> None:
    env = {**os.environ, **IMPORT_ENV}
    whole_process_seconds("import function_app", copy, env)  # warm the OS's file cache
    app: list[tuple[float, float]] = []
    library: list[tuple[float, float]] = []
    for _ in range(runs):
        app.append(whole_process_seconds("import function_app", copy, env))
        library.append(whole_process_seconds("import azure.functions", copy, env))
    print(f"import, {runs} fresh processes each (whole process, no .pyc in the app)")
    for n, kind in enumerate(("wall", "CPU")):
        ratios = sorted(a[n] / b[n] for a, b in zip(app, library, strict=True))
        app_ms = statistics.median(a[n] for a in app) * 1000
        library_ms = statistics.median(b[n] for b in library) * 1000
        print(
            f"  {kind:<4} import function_app median {app_ms:6.1f} ms, import azure.functions "
            f"{library_ms:6.1f} ms; ratio median {statistics.median(ratios):.2f} "
            f"(min {ratios[0]:.2f}, max {ratios[-1]:.2f})"
        )


def http_function(name: str) -> Any:
    import function_app

    for fn in function_app.app.get_functions():
        if fn.get_function_name() == name:
            return fn.get_user_function()
    raise LookupError(name)


def call(handler: Any, method: str, path: str, token: str, body: Any, **route: str) -> Any:
    import azure.functions as func

    response = handler(
        func.HttpRequest(
            method=method,
            url=f"http://localhost/api{path}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            params={},
            route_params=route,
            body=json.dumps(body).encode(),
        )
    )
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path}: {response.status_code} {response.get_body()!r}")
    return json.loads(response.get_body())


def approve_in_this_process(token: str, booking_ids: list[str]) -> None:
    """(In the measured process.) Approve each booking; print each call's wall and CPU
    seconds as JSON."""
    approve = http_function("bookings_approve")
    seconds = []
    for booking_id in booking_ids:
        started, cpu = time.perf_counter(), time.process_time()
        call(approve, "POST", f"/v1/bookings/{booking_id}/approve", token, {}, id=booking_id)
        seconds.append((time.perf_counter() - started, time.process_time() - cpu))
    print(json.dumps(seconds))


def bench_first_request(copy: Path, processes: int, approvals: int) -> None:
    from localdev.stack import DEMO_TENANT_ID, local_services

    with (
        tempfile.TemporaryDirectory(prefix="bench-first-") as state,
        local_services(state_dir=Path(state)) as services,
    ):
        env = {**os.environ, **services.settings, "RECONCILE_SCHEDULE": "0 0 0 1 1 *"}
        os.environ.update(env)
        token = services.issuer.mint(user="staff-1", roles=["staff"], tenant=DEMO_TENANT_ID)
        create = http_function("bookings_create")
        # (wall, CPU) of the first approve, of a warm one, and their ratio, per process
        firsts: list[tuple[float, float]] = []
        warms: list[tuple[float, float]] = []
        ratios: list[tuple[float, float]] = []
        for run in range(processes + 1):  # the first process only warms the OS's file cache
            ids = [
                call(create, "POST", "/v1/bookings", token, booking_body(run * approvals + n))["id"]
                for n in range(approvals)
            ]
            child = [sys.executable, "-B", str(copy / "scripts" / "bench_import.py")]
            output = subprocess.run(
                [*child, "--approve", token, *ids],
                cwd=copy,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            seconds = json.loads(output.strip().splitlines()[-1])
            if run == 0:
                continue
            first = (seconds[0][0], seconds[0][1])
            warm = (
                statistics.median(s[0] for s in seconds[1:]),
                statistics.median(s[1] for s in seconds[1:]),
            )
            firsts.append(first)
            warms.append(warm)
            ratios.append((first[0] / warm[0], first[1] / warm[1]))
    print(
        f"first request, {processes} fresh processes of {approvals} approvals each "
        "(in process, through the function index; Azurite and the Graph emulator)"
    )
    for n, kind in enumerate(("wall", "CPU")):
        ratio = sorted(r[n] for r in ratios)
        first_ms = statistics.median(f[n] for f in firsts) * 1000
        warm_ms = statistics.median(w[n] for w in warms) * 1000
        print(
            f"  {kind:<4} first approve median {first_ms:6.1f} ms, warm {warm_ms:6.1f} ms; "
            f"ratio median {statistics.median(ratio):.2f} "
            f"(min {ratio[0]:.2f}, max {ratio[-1]:.2f})"
        )


def booking_body(n: int) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) + timedelta(days=3, hours=n)).replace(
        minute=0, second=0, microsecond=0
    )
    return {
        "subject": "Maths",
        "startDateTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endDateTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "timeZone": "Europe/London",
        "participants": [
            {"userId": "student-1", "role": "student", "email": "student@example.com"},
            {"userId": "tutor-1", "role": "tutor", "email": "tutor@example.com"},
        ],
    }


# The measured process makes these modules unimportable (comma-separated).
ABSENT = "BENCH_ABSENT_MODULES"


def main() -> None:
    sys.path.insert(0, str(ROOT))
    if sys.argv[1:2] == ["--approve"]:
        for name in filter(None, os.environ.get(ABSENT, "").split(",")):
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
        approve_in_this_process(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="import: processes of each kind")
    parser.add_argument("--processes", type=int, default=7, help="first request: processes")
    parser.add_argument("--approvals", type=int, default=6, help="first request: per process")
    parser.add_argument("--only", choices=("import", "first-request"))
    parser.add_argument(
        "--absent", default="", help="first request: modules the deployment lacks, e.g. aiohttp"
    )
    args = parser.parse_args()
    os.environ[ABSENT] = args.absent
    with fresh_copy() as copy:
        if args.only != "first-request":
            bench_import(copy, args.runs)
        if args.only != "import":
            bench_first_request(copy, args.processes, args.approvals)


if __name__ == "__main__":
    main()
