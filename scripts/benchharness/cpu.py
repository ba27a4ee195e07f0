"""Where a request's CPU goes: CPU time of each process (with its children) around a load.

On two shared cores a throughput ratio hides who spent what: the router and a subgraph,
PostgreSQL and the load generator all take turns on the same cores. Reading each
process's CPU time (/proc/<pid>/stat, utime + stime) before and after a wrk run gives
milliseconds of CPU per request for each, next to the ratio they explain.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found += _tree(int(child))
    return found


def _seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def process_seconds(pid: int) -> float:
    """CPU seconds a process and its children have used so far."""
    return _seconds(_tree(pid))


def _named(prefix: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith(prefix):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values) - idle) / _TICKS


class CpuMeter:
    """CPU seconds of the named processes, of every PostgreSQL backend, and of the machine."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def snapshot(self) -> dict[str, float]:
        taken = {name: _seconds(_tree(pid)) for name, pid in self.pids.items()}
        taken["postgres"] = _seconds(_named("postgres"))
        taken["machine"] = _machine_busy_seconds()
        return taken

    @staticmethod
    def per_request(
        before: dict[str, float], after: dict[str, float], requests: int
    ) -> dict[str, float]:
        """Milliseconds of CPU per request for each, leaving out the ones that took none
        ("machine" is every process: the rest is the load generator and the yardstick)."""
        spent = {name: after[name] - before.get(name, after[name]) for name in after}
        return {
            name: round(1000 * seconds / requests, 3)
            for name, seconds in spent.items()
            if requests and seconds > 0.02
        }
