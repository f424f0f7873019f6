"""Every benchmark, one command: prints each figure as it is measured and writes docs/benchmarks.md.

    make bench                      # the full run (about 10 minutes on 2 cores)
    make bench ARGS=--quick         # a short run with fewer samples (about 3 minutes)
    .venv/bin/python scripts/bench.py [--quick] [--only payments,burst] [--out FILE]

Each section is a function returning `Figure`s (a measured value next to its target, and whether
it is met). Sections measured by another script are loaded by module name: a script that offers
`bench(quick: bool) -> list[dict]` (keys `name`, `value`, `target`, `met`, `note`) gives figures;
one that only has a command line is run and its output is quoted; a script not in the checkout is
reported as "not measured". Nothing here asserts: `make test` holds the counts, this publishes
the times.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "benchmarks.md"
# Where a figure meets its target, misses it or has none.
MET, MISSED, INFO = "met", "missed", ""


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return INFO if self.met is None else (MET if self.met else MISSED)


@dataclass
class Section:
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Mode:
    quick: bool

    def pick(self, quick: int, full: int) -> int:
        return quick if self.quick else full


def say(text: str) -> None:
    print(text, flush=True)


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    git = shutil.which("git")
    commit = ""
    if git:
        commit = subprocess.run(
            [git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    return {
        "load": _load_average(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "commit": commit or "unknown",
    }


def _load_average() -> str:
    """The 1-minute load average: other work on the machine slows every figure here."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


# -- cold start ------------------------------------------------------------------------------


def _clear_project_bytecode() -> None:
    """A fresh deployment has no .pyc for the project's own modules (site-packages keep theirs)."""
    for top in ("function_app.py", "functions", "shared"):
        path = ROOT / top
        if path.is_dir():
            for cache in path.rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(ROOT / "__pycache__", ignore_errors=True)


def _app_env() -> dict[str, str]:
    """The settings indexing needs (as scripts/bench_import.py gives them), and no .pyc
    written for the project, so that every run imports it as a fresh deployment does."""
    return {
        **os.environ,
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AUTH_ISSUER": "https://issuer.example",
        "AUTH_AUDIENCE": "meetings",
        "AUTH_JWKS_URL": "https://issuer.example/jwks",
        "STRIPE_WEBHOOK_SECRET": "whsec_bench",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _whole_process_seconds(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-B", "-c", code], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - started


def cold_import(mode: Mode) -> Section:
    section = Section("cold-import", "Cold start: importing the function app")
    runs = mode.pick(7, 21)
    _clear_project_bytecode()
    env = _app_env()
    # Whole fresh processes, A and B in turn so that drift on a shared machine hits both: the
    # ratio is taken pair by pair and its median reported.
    _whole_process_seconds("import function_app", env)
    pairs = []
    for _ in range(runs):
        app = _whole_process_seconds("import function_app", env)
        library = _whole_process_seconds("import azure.functions", env)
        pairs.append((app, library))
    ratios = sorted(a / b for a, b in pairs)
    app_ms = statistics.median(a for a, _ in pairs) * 1000
    lib_ms = statistics.median(b for _, b in pairs) * 1000
    ratio = statistics.median(ratios)
    say(f"  whole process: function_app {app_ms:.0f} ms, azure.functions {lib_ms:.0f} ms")
    # The import itself (interpreter start-up left out), from -X importtime in the same runs.
    from scripts import bench_import

    if not hasattr(bench_import, "one_run"):
        # The script measures cold start its own way (the import and the first request, from a
        # fresh copy of the checkout): quote it.
        quote_script(section, ROOT / "scripts" / "bench_import.py")
        section.notes.append(
            "Targets: the import ≤ 1.3x `import azure.functions`; the first request ≤ 1.5x a "
            "warm one."
        )
        first = re.search(
            r"wall first approve median\s+([\d.]+) ms, warm\s+([\d.]+) ms; ratio median ([\d.]+)",
            section.output,
        )
        if first is not None:
            first_ms, warm_ms, first_ratio = (float(v) for v in first.groups())
            section.figures.append(
                Figure(
                    "first approve in a fresh process / a warm one (wall)",
                    f"{first_ratio:.2f}x ({first_ms:.0f} ms / {warm_ms:.0f} ms)",
                    "≤ 1.5x",
                    first_ratio <= 1.5,
                    "the first pays the use cases' imports, the storage clients and tables, "
                    "sign-in and the organizer lookup",
                )
            )
    else:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        samples = [bench_import.one_run() for _ in range(runs)]
        import_ratio = statistics.median(a / b for a, b in samples)
        section.figures.append(
            Figure(
                "import function_app / import azure.functions (-X importtime, cumulative)",
                f"{import_ratio:.2f}x",
                "≤ 1.3x",
                import_ratio <= 1.3,
                f"medians of {runs} fresh processes, project .pyc removed",
            )
        )
        say(f"  import time ratio {import_ratio:.2f}x")
    section.figures.append(
        Figure(
            "whole process `python -c 'import function_app'` / `… azure.functions`",
            f"{ratio:.2f}x ({app_ms:.0f} ms / {lib_ms:.0f} ms)",
            "≤ 1.3x",
            ratio <= 1.3,
            f"paired runs, median of {runs}; min {ratios[0]:.2f}x, max {ratios[-1]:.2f}x",
        )
    )
    say(f"  whole process ratio {ratio:.2f}x (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
    return section


def first_request(mode: Mode) -> Section:
    """The first request to a fresh host against a warm one (the same request, a booking)."""
    section = Section("first-request", "Cold start: the first request")
    import tempfile

    import requests

    from localdev.stack import DEMO_TENANT_ID, local_stack
    from scripts import bench_import
    from scripts.bench_payments import QUIET_TIMER, make_bookings

    if hasattr(bench_import, "bench_first_request"):
        section.notes.append(
            "Measured by `scripts/bench_import.py`: its output is quoted in the cold start "
            "section above."
        )
        say("  measured by scripts/bench_import.py (above)")
        return section
    warm_runs = mode.pick(10, 30)
    with (
        tempfile.TemporaryDirectory(prefix="bench-first-") as state,
        local_stack(state_dir=Path(state), extra_env=QUIET_TIMER, wait_healthy=False) as stack,
    ):
        token = stack.issuer.mint(user="admin-1", roles=["admin"], tenant=DEMO_TENANT_ID)

        def timed() -> float:
            started = time.perf_counter()
            make_bookings(stack, 1, token, int(started * 1000) % 10_000)
            return time.perf_counter() - started

        first = timed()
        warm = statistics.median(timed() for _ in range(warm_runs))
        requests.get(f"{stack.api}/v1/health", timeout=10)
    ratio = first / warm
    section.figures.append(
        Figure(
            "first `POST /v1/bookings` to a fresh host / a warm one",
            f"{ratio:.2f}x ({first * 1000:.0f} ms / {warm * 1000:.0f} ms)",
            "≤ 1.5x",
            ratio <= 1.5,
            f"warm: median of {warm_runs}; the host has imported the app, nothing else",
        )
    )
    say(f"  first request {first * 1000:.0f} ms, warm {warm * 1000:.0f} ms: {ratio:.2f}x")
    return section


# -- payment → link --------------------------------------------------------------------------


def payments(mode: Mode) -> Section:
    from scripts import bench_payments

    section = Section("payments", "Payment → link, Graph slowed by 100 ms a call")
    events = mode.pick(32, 100)
    results = []
    for processes in (1, 2):
        say(f"  {processes} worker process(es):")
        results.append(bench_payments.measure(events=events, worker_processes=processes, echo=True))
    for result in results:
        label = (
            f"{result.worker_processes} worker process{'es' if result.worker_processes > 1 else ''}"
        )
        for run in (result.alone, result.together):
            who = "1 sender" if run.senders == 1 else f"{run.senders} senders"
            section.figures.append(
                Figure(
                    f"{label}, {who}: p50 / p95 / p99",
                    " / ".join(f"{t * 1000:.0f}" for t in (run.p50, run.p(0.95), run.p(0.99)))
                    + " ms",
                    note=f"{len(run.times)} events, {run.throughput:.1f}/s, inline {run.inline}",
                )
            )
        section.figures.append(
            Figure(
                f"{label}: p50 at 16 senders / p50 at 1",
                f"{result.ratio:.2f}x",
                "≤ 2x",
                result.ratio <= 2,
                "CPU per webhook: "
                + ", ".join(f"{k} {v:.0f} ms" for k, v in result.cpu_ms.items())
                + f"; waiting in line {(result.together.p50 - result.alone.p50) * 1000:.0f} ms",
            )
        )
    section.notes.append(
        "Each event is timed from its request to the booking carrying its link. The concurrent "
        "p50 beyond the single sender's is time spent waiting in line: for CPU (per webhook the "
        "host, Azurite on one Node.js thread and this process with the clients and the Graph "
        "emulator use the CPU figures above, all on the same cores), and beyond "
        "`PYTHON_THREADPOOL_THREAD_COUNT` requests a process for a thread. One worker process "
        "is held to one core by the GIL; two (`FUNCTIONS_WORKER_PROCESS_COUNT=2`) use both "
        "cores, as two Flex Consumption instances of 1 vCPU would. 16 senders within 2x of one "
        "needs about 2 cores x 2 x p50(1) / 16 of CPU per webhook in all: about 80 ms here."
    )
    return section


def burst(mode: Mode) -> Section:
    from scripts import bench_burst

    bookings = mode.pick(200, 1000)
    section = Section("burst", f"A burst of {bookings} paid bookings at a cold host")
    result = bench_burst.measure(bookings=bookings, echo=True)
    say(
        f"  meetings {result.meetings}, duplicates {result.duplicates}, tokens "
        f"{result.token_requests}, last link after {result.seconds_to_last_link:.1f} s"
    )
    section.figures += [
        Figure(
            "meetings / bookings",
            f"{result.meetings} / {result.bookings}",
            "equal",
            result.meetings == result.bookings and result.without_link == 0,
            f"{result.events} events from {result.senders} senders: {result.redelivered} "
            f"delivered twice, {result.out_of_order} preceded by their checkout event",
        ),
        Figure("duplicate meetings", str(result.duplicates), "0", result.duplicates == 0),
        Figure(
            "token requests for the tenant",
            str(result.token_requests),
            "1 per worker process",
            result.token_requests <= result.worker_processes,
            f"{result.worker_processes} worker process(es)",
        ),
        Figure(
            "organizer lookups for the tenant",
            str(result.organizer_lookups),
            "1 per worker process",
            result.organizer_lookups <= result.worker_processes,
        ),
        Figure(
            "peak memory of the host (largest worker process)", f"{result.peak_rss_mib:.0f} MiB"
        ),
        Figure(
            "first event to the last link",
            f"{result.seconds_to_last_link:.1f} s",
            note=f"{result.bookings / result.seconds_to_last_link:.1f} bookings/s; final "
            f"answers {result.answers}; 5xx answers delivered again (as Stripe does): "
            f"{result.retried or 'none'}",
        ),
    ]
    return section


# -- mail ------------------------------------------------------------------------------------


def mail(mode: Mode) -> Section:
    from scripts import bench_mail

    section = Section("mail", "Mail: render cost and e-mails per minute")
    render = bench_mail.rendering(mode.pick(100, 500))
    # The worker logs every failed sendMail; the figures say what matters.
    logging.disable(logging.ERROR)
    try:
        delivered = bench_mail.delivery(mode.pick(20, 50), 0.3)
    finally:
        logging.disable(logging.NOTSET)
    paced = bench_mail.pacing()
    per_minute = delivered["sent"] / delivered["wall_s"] * 60
    section.figures += [
        Figure(
            "render one approval e-mail (text + HTML + invite + MIME)",
            f"{render['median_us'] / 1000:.1f} ms median, {render['p95_us'] / 1000:.1f} ms p95",
            note=f"message {render['message_bytes']:.0f} bytes",
        ),
        Figure(
            "e-mails per recipient and change, sendMail failing 30 %",
            f"{delivered['max_per_change']:.0f}",
            "1",
            delivered["max_per_change"] == 1 == delivered["min_per_change"]
            and delivered["sent"] == delivered["expected"],
            f"{delivered['sent']:.0f} sent in {delivered['send_calls']:.0f} sendMail calls",
        ),
        Figure(
            "e-mails one worker process makes per minute (CPU-bound, in-memory storage)",
            f"{per_minute:,.0f}",
            note="retries and pauses on a simulated clock",
        ),
        Figure(
            "60 sends from one mailbox at its 30 a minute",
            f"last at t = {paced['finished_at_s']:.0f} s",
            "paced, none refused",
            True,
        ),
    ]
    return section


# -- sections measured by other scripts ------------------------------------------------------


def _load(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def quote_script(section: Section, path: Path, args: list[str] | None = None) -> None:
    """Run a benchmark script by its command line and quote what it prints."""
    done = subprocess.run(
        [sys.executable, str(path), *(args or [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    section.output = (done.stdout + done.stderr).strip()
    for line in section.output.splitlines():
        say(f"  {line}")
    section.notes.append(f"Output of `{path.relative_to(ROOT)}`.")


def plugged(key: str, title: str, module: str, targets: str) -> Callable[[Mode], Section]:
    """A section another script measures: its `bench(quick)` figures, else its output."""

    def run(mode: Mode) -> Section:
        section = Section(key, title)
        loaded = _load(module)
        path = ROOT / (module.replace(".", "/") + ".py")
        if loaded is None:
            section.notes.append(
                f"not measured: `{path.relative_to(ROOT)}` is not in this "
                f"checkout. Target: {targets}."
            )
            say("  not measured")
            return section
        bench_fn = getattr(loaded, "bench", None)
        if callable(bench_fn):
            for item in bench_fn(quick=mode.quick):
                section.figures.append(
                    Figure(
                        str(item["name"]),
                        str(item["value"]),
                        str(item.get("target", "")),
                        item.get("met"),
                        str(item.get("note", "")),
                    )
                )
                say(f"  {item['name']}: {item['value']}")
            return section
        quote_script(section, path)
        section.notes.append(f"Target: {targets}.")
        return section

    return run


SECTIONS: list[tuple[str, str, Callable[[Mode], Section]]] = [
    ("cold-import", "cold import", cold_import),
    ("first-request", "first request", first_request),
    (
        "round-trips",
        "round trips",
        plugged(
            "round-trips",
            "Storage round trips and Graph calls per action",
            "scripts.bench_round_trips",
            "approve, reschedule, cancel ≤ 6 storage round trips, a payment webhook ≤ 9; Graph 2 "
            "per approve, 1 per reschedule and cancel; approve overhead in round-trip units",
        ),
    ),
    ("payments", "payment → link", payments),
    ("burst", "burst", burst),
    (
        "listing",
        "listing",
        plugged(
            "listing",
            "Listing bookings",
            "scripts.bench_listing",
            "`limit=20` with 4,000 bookings within 1.5x of 100 (requests counted)",
        ),
    ),
    (
        "reconcile",
        "reconciliation",
        plugged(
            "reconcile",
            "Reconciliation and pre-start verification",
            "scripts.bench_reconcile",
            "10,000 healthy + 10 drifted bookings cost about what 0 + 10 cost (entities read, "
            "requests)",
        ),
    ),
    ("mail", "mail", mail),
]


# -- the report ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(sections: list[Section], info: dict[str, str], mode: Mode, seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`scripts/bench.py`); do not edit by hand, run it again. Each",
        "figure is measured on the machine below against the local stack (Azurite, the Graph",
        "emulator, the local Functions host), next to its target. Times vary from machine to",
        "machine and run to run; ratios and counts are what to compare.",
        "",
        "| Machine | |",
        "|---|---|",
        f"| Date | {info['date']} |",
        f"| Commit | `{info['commit']}` |",
        f"| Cores | {info['cores']} ({_cell(info['cpu'])}) |",
        f"| Memory | {info['memory']} |",
        f"| Python | {info['python']} ({info['system']}) |",
        f"| Run | {'`--quick` (fewer samples)' if mode.quick else 'full'}, "
        f"{seconds / 60:.1f} min |",
        f"| Load average (1 min) | {info['load']} at the start, {_load_average()} at the end "
        f"(on {info['cores']} cores: above that, other work shared the machine) |",
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", ""]
        if section.figures:
            lines += ["| Figure | Measured | Target | |", "|---|---|---|---|"]
            for f in section.figures:
                value = _cell(f.value) + (f"<br>{_cell(f.note)}" if f.note else "")
                mark = {MET: "met", MISSED: "**missed**", INFO: ""}[f.verdict]
                lines.append(f"| {_cell(f.name)} | {value} | {_cell(f.target)} | {mark} |")
            lines.append("")
        for note in section.notes:
            lines += [note, ""]
        if section.output:
            lines += ["```text", section.output, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


@contextlib.contextmanager
def timed(label: str) -> Iterator[list[float]]:
    say(f"== {label}")
    started = time.perf_counter()
    box: list[float] = []
    yield box
    box.append(time.perf_counter() - started)
    say(f"   ({box[0]:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, a few minutes")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: " + ", ".join(key for key, _, _ in SECTIONS),
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    wanted = {key.strip() for key in args.only.split(",") if key.strip()}
    unknown = wanted - {key for key, _, _ in SECTIONS}
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    mode = Mode(args.quick)
    info = machine()
    say(f"Benchmarks on {info['cores']} cores, {info['memory']}, Python {info['python']}")
    started = time.perf_counter()
    sections: list[Section] = []
    for key, label, measure in SECTIONS:
        if wanted and key not in wanted:
            continue
        with timed(label) as took:
            try:
                section = measure(mode)
            except Exception as exc:  # one broken section must not lose the others' figures
                section = Section(key, label)
                section.notes.append(f"not measured: the section failed ({exc!r})")
                say(f"  failed: {exc!r}")
        section.seconds = took[0] if took else 0.0
        sections.append(section)
    total = time.perf_counter() - started
    args.out.write_text(render(sections, info, mode, total))
    missed = [f.name for s in sections for f in s.figures if f.verdict == MISSED]
    say(f"Wrote {args.out} in {total / 60:.1f} min; targets missed: {len(missed)}")
    for name in missed:
        say(f"  missed: {name}")


if __name__ == "__main__":
    main()
