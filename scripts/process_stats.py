"""CPU seconds and peak memory of running processes and their children, read from /proc (Linux).

The benchmarks use it to say where a webhook's CPU goes (the Functions host, Azurite, the
benchmark itself with the Graph emulator) and how much memory the host's processes peaked at.
On a system without /proc every figure is None and the benchmarks say "not measured".
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def available() -> bool:
    return (_PROC / "self" / "stat").exists()


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it."""
    found = [pid]
    try:
        tasks = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found += process_tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far (0 when it is gone)."""
    try:
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The largest resident set `pid` has had (VmHWM), in MiB (0 when it is gone)."""
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()`."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self._before: dict[int, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._before = {pid: cpu_seconds(pid) for pids in self.groups.values() for pid in pids}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {
            name: sum(max(0.0, cpu_seconds(pid) - self._before.get(pid, 0.0)) for pid in pids)
            for name, pids in self.groups.items()
        }
        return self.used
