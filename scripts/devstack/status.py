"""One health table for the whole dev stack: what `scripts/status` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .backing import (
    DEFAULT_POSTGRES_URL,
    DEFAULT_REDIS_URL,
    Backing,
    forced_private,
    pg_error,
    private_urls,
    redis_error,
)
from .processes import http_get, read_pid_records
from .stack import SUBGRAPHS, WORKER_APP, WORKFLOW_WORKER_APP, Stack, StackPorts


@dataclass(frozen=True)
class Row:
    name: str
    up: bool
    detail: str
    pid: int | None = None  # when started by scripts/up and still that process


def stack_for_status(data_dir: Path, run_dir: Path, log_dir: Path) -> Stack:
    """The stack `up` described in run/stack.json, else the one `up` would start now."""
    described = Stack.described_by(run_dir / "stack.json", log_dir=log_dir)
    if described is not None:
        return described
    private_pg, private_redis = private_urls(data_dir)
    pg_url, pg_private = _reachable(
        os.environ.get("HUB_POSTGRES_URL", DEFAULT_POSTGRES_URL), private_pg, pg_error
    )
    redis_url, redis_private = _reachable(
        os.environ.get("HUB_REDIS_URL", DEFAULT_REDIS_URL), private_redis, redis_error
    )
    backing = Backing(pg_url, redis_url, pg_private, redis_private)
    return Stack(backing, ports=StackPorts.from_env(os.environ), log_dir=log_dir)


def _reachable(usual: str, private: str, error_of: Callable) -> tuple[str, bool]:
    """The usual server unless only the private one answers (as `up` would choose)."""
    if forced_private(os.environ) or (error_of(usual) is not None and error_of(private) is None):
        return private, True
    return usual, False


def check_all(stack: Stack, run_dir: Path) -> list[Row]:
    pids = {r.name: r for r in read_pid_records(run_dir) if r.is_running()}
    checks: list[Callable[[], Row]] = [
        lambda: _backing_row(
            "postgres", stack.backing.postgres_url, stack.backing.private_postgres, pg_error
        ),
        lambda: _backing_row(
            "redis", stack.backing.redis_url, stack.backing.private_redis, redis_error
        ),
        lambda: _http_row("router", f"{stack.urls['router']}/readiness", pids),
        *[(lambda s=s: _http_row(s, f"{stack.urls[s]}/ready", pids)) for s in SUBGRAPHS],
        lambda: _worker_row(stack, pids, "worker", WORKER_APP, stack.worker_name),
        lambda: _worker_row(
            stack, pids, "workflow-worker", WORKFLOW_WORKER_APP, stack.workflow_worker_name
        ),
    ]
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda check: check(), checks))


def render(rows: list[Row], colour: bool) -> str:
    width = max(len(r.name) for r in rows)
    lines = [f"{'SERVICE'.ljust(width)}  STATE  PID      CHECK"]
    for row in rows:
        state = "up  " if row.up else "DOWN"
        if colour:
            state = f"\x1b[{'32' if row.up else '31'}m{state}\x1b[0m"
        pid = str(row.pid or "-").ljust(7)
        lines.append(f"{row.name.ljust(width)}  {state}   {pid}  {row.detail}")
    return "\n".join(lines)


def _backing_row(name: str, url: str, private: bool, error_of: Callable) -> Row:
    problem = error_of(url)
    where = f"{url} ({'private, under .data/' if private else 'shared server'})"
    return Row(name, problem is None, where if problem is None else f"{where}: {problem}")


def _http_row(name: str, url: str, pids: dict) -> Row:
    status, body = http_get(url, timeout=3)
    pid = pids[name].pid if name in pids else None
    if status == 200:
        return Row(name, True, f"{url} 200", pid)
    if status is None:
        return Row(name, False, f"{url} no answer ({body})", pid)
    return Row(name, False, f"{url} {status} {_one_line(body)}", pid)


def _worker_row(stack: Stack, pids: dict, name: str, app: str, node: str) -> Row:
    # A real round trip through the broker; only our node, so that another stack's worker
    # on the same Redis cannot answer for it.
    celery = str(Path(sys.executable).parent / "celery")
    argv = [celery, "-A", app, "inspect", "ping", "--timeout", "3", "-d", node]
    try:
        result = subprocess.run(
            argv, cwd=stack.root, env=stack.env, capture_output=True, text=True, timeout=30
        )
        ok, output = result.returncode == 0, result.stdout + result.stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        ok, output = False, str(exc)
    pid = pids[name].pid if name in pids else None
    if ok:
        return Row(name, True, f"celery inspect ping: {node} answers", pid)
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return Row(name, False, f"celery inspect ping {node}: {last}", pid)


def _one_line(body: str, limit: int = 100) -> str:
    try:
        body = json.dumps(json.loads(body), separators=(",", ":"))
    except ValueError:
        body = " ".join(body.split())
    return body if len(body) <= limit else body[: limit - 1] + "…"
