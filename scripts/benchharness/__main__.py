"""scripts/bench: seed, start the stack in production mode, measure, report.

    scripts/bench            full data set (1,000 users ... 100,000 documents), 10 s per load
    scripts/bench --quick    small data set, short loads: under two minutes (what CI runs)
    scripts/bench --soak     the full run, then 10 minutes of load with memory per process
    --keep                   keep the seeded databases (hubbench_*); the next run reuses them

Results: a table on stdout and bench-results/<time>.json (also bench-results/latest.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from devstack import DATA_DIR, Stack, ensure_backing_services
from devstack.backing import drop_databases
from devstack.ports import free_port
from devstack.processes import ManagedProcess

from . import dataset, measure, report
from . import subscribers as subscribers_module

ROOT = Path(__file__).resolve().parents[2]


MEASUREMENTS = (
    "router overhead",
    "Python efficiency",
    "N+1",
    "scale",
    "search",
    "dashboard",
    "subscriptions",
    "soak",
)


class BenchStack(Stack):
    """The stack as scripts/up runs it, optionally only the parts a measurement uses.

    served_only: just the router and the subgraphs (quick mode: the workers, scheduler
    and event consumer take no part in any measurement, and starting them on two cores
    would take a third of the two minutes).
    """

    served_only = False

    def processes(self) -> list[ManagedProcess]:
        wanted = ("router", *measure.SUBGRAPHS) if self.served_only else None
        return [p for p in super().processes() if wanted is None or p.name in wanted]


def log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data set, short loads")
    parser.add_argument("--soak", action="store_true", help="add 10 minutes of load, memory")
    parser.add_argument("--soak-minutes", type=float, default=10.0, help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the databases")
    parser.add_argument("--reseed", action="store_true", help="seed again even if kept")
    parser.add_argument("--seconds", type=float, help="seconds per load (default 10, quick 2)")
    parser.add_argument("--subscribers", type=int, help="default 1000, quick 100")
    parser.add_argument("--output", type=Path, help="JSON file (default bench-results/<time>.json)")
    parser.add_argument(
        "--only",
        action="append",
        choices=MEASUREMENTS,
        help="run only this measurement (repeatable); the report then names what is missing",
    )
    parser.add_argument(
        "--hold",
        action="store_true",
        help="measure nothing: keep the seeded stack up (its URLs, token and pids in"
        " bench-results/hold.json) until interrupted, to profile it under your own load",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    size = dataset.QUICK if args.quick else dataset.FULL
    # A throwaway quick run gets databases of its own: CI and a developer may run at once.
    prefix = (
        ("hubbench_quick" if args.keep else f"hubbench_q{secrets.token_hex(3)}")
        if args.quick
        else "hubbench"
    )
    results_dir = ROOT / "bench-results"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work_dir = results_dir / f"run-{stamp}"
    work_dir.mkdir(parents=True, exist_ok=True)

    backing = ensure_backing_services(DATA_DIR, log=log)
    namespace = f"{prefix}_{secrets.token_hex(3)}"
    stack = BenchStack.for_tests(
        backing,
        log_dir=work_dir / "logs",
        database_prefix=prefix,
        redis_namespace=namespace,
        env={
            "HUB_ENV": "production",
            "HUB_ROUTER_DEDUPLICATE": "false",  # merged requests would fake the work
            "HUB_ROUTER_RATE_LIMIT": "off",
            "HUB_IDENTITY_ACCESS_TOKEN_SECONDS": "3600",  # outlives a soak
            "HUB_GC_PAUSE_METRIC": "true",  # reported with the subscriptions
            **{k: v for k, v in os.environ.items() if k.startswith("HUB_BENCH_")},
        },
    )
    stack.served_only = args.quick
    dsns = {
        service: f"{backing.postgres_url.rstrip('/')}/{name}"
        for service, name in stack.database_names.items()
    }
    yardstick: subprocess.Popen[bytes] | None = None
    bare_proxy: subprocess.Popen[bytes] | None = None
    # SIGTERM stops a run as Ctrl-C does: through the `finally` below, which stops the stack
    # and the yardsticks (a terminated run left its yardstick serving).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if args.reseed or not args.keep:
            stack.drop_databases()
        stack.migrate()
        phases: dict[str, float] = {"migrated": round(time.monotonic() - started, 1)}
        log(f"migrated ({phases['migrated']:.0f}s)")
        reuse = asyncio.run(dataset.seeded(dsns["identity"], size))
        if args.keep and not reuse:  # a kept data set of another size, or an unfinished one
            stack.drop_databases()
            stack.migrate()
        # The stack starts while the data loads: no service needs data to start.
        log("stack: starting in production mode")
        stack.start()
        if reuse:
            log(f"seed: reusing the kept data set ({size.label})")
        else:
            asyncio.run(dataset.seed(dsns, size, search_vector_sql=_search_vector_sql(), log=log))
        seeded = asyncio.run(dataset.describe(dsns, size))
        phases["seeded"] = round(time.monotonic() - started, 1)
        stack.wait_ready(timeout=180)
        yardstick_port = free_port()
        yardstick = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchharness.yardstick",
                "--dsn",
                dsns["content"],
                "--port",
                str(yardstick_port),
            ],
            cwd=ROOT,
            env=os.environ.copy(),
        )
        # The router overhead's floor: Node's HTTP server and client forwarding to content.
        bare_proxy_port = free_port()
        bare_proxy = subprocess.Popen(
            [
                "node",  # from PATH, as the router's own
                str(ROOT / "scripts" / "benchharness" / "bare-proxy.mjs"),
                stack.urls["content"],
                str(bare_proxy_port),
            ],
            cwd=ROOT,
        )
        urls = {
            **stack.urls,
            "yardstick": f"http://127.0.0.1:{yardstick_port}",
            "bare_proxy": f"http://127.0.0.1:{bare_proxy_port}",
        }
        _wait_http(urls["yardstick"] + "/", timeout=30)
        _wait_http(urls["bare_proxy"] + "/", timeout=30)
        log(f"stack: ready after {time.monotonic() - started:.0f}s")

        subscribers = args.subscribers or (100 if args.quick else 1000)
        # Enough signed-in members for every subscriber to be one of a user's few tabs
        # (subscribers.TABS_PER_USER); each login is a real argon2 check (~0.15 s).
        members = math.ceil(subscribers / subscribers_module.TABS_PER_USER)
        tokens = _sign_in(urls["identity"], seeded, min(len(seeded.user_ids), 1 + max(members, 10)))
        admin_id = seeded.user_ids[0]
        bench = measure.Bench(
            urls=urls,
            admin_token=tokens.pop(admin_id),
            user_tokens=tokens,
            seeded=seeded,
            work_dir=work_dir,
            seconds=args.seconds or (2.0 if args.quick else 10.0),
            rounds=1 if args.quick else 2,
            redis_url=backing.redis_url,
            communication_prefix=stack.env["HUB_COMMUNICATION_REDIS_NAMESPACE"] + ":",
            root=ROOT,
            subscribers=subscribers,
            log=log,
        )
        pids = _pids(stack)
        bench.pids = {**pids, "yardstick": yardstick.pid, "bare_proxy": bare_proxy.pid}
        phases["ready"] = round(time.monotonic() - started, 1)
        memory_before = measure.rss_of_processes(pids)
        output = args.output or results_dir / f"{stamp}.json"
        output.parent.mkdir(parents=True, exist_ok=True)

        def document() -> dict[str, Any]:
            return {
                "mode": "quick" if args.quick else "full",
                "started_at": stamp,
                "seconds_total": round(time.monotonic() - started, 1),
                "phases_seconds": phases,
                "data_set": {**size.__dict__},
                "machine": _machine(),
                "settings": {"seconds_per_load": bench.seconds, "rounds": bench.rounds},
                "results": bench.results,
            }

        measurements = [
            ("router overhead", measure.router_overhead),
            ("Python efficiency", measure.python_efficiency),
            ("N+1", measure.n_plus_one),
            ("scale", measure.scale),
            ("search", measure.search),
            ("dashboard", measure.dashboard_load),
            ("subscriptions", measure.subscriptions),
        ]
        if args.soak:
            measurements.append(
                ("soak", lambda bench: measure.soak(bench, pids, args.soak_minutes))
            )
        if args.only:
            measurements = [(name, run) for name, run in measurements if name in args.only]
        if args.hold:
            _hold(results_dir / "hold.json", bench, pids)
            return 0
        for name, run in measurements:
            log(f"measure: {name}")
            run(bench)
            phases[name] = round(time.monotonic() - started, 1)
            # Written after each one: a long run that fails late keeps what it measured.
            output.write_text(json.dumps(document(), indent=2, default=str) + "\n")
        bench.results["memory_mib"] = {
            "before": memory_before,
            "after": measure.rss_of_processes(pids),
        }
        final = document()
        output.write_text(json.dumps(final, indent=2, default=str) + "\n")
        (results_dir / "latest.json").write_text(output.read_text())
        # A partial run (--only) has no full table: its numbers as they are.
        complete = report.complete(final)
        print(report.table(final) if complete else json.dumps(final["results"], indent=2))
        log(f"results: {output} ({final['seconds_total']:.0f}s)")
        return 0 if complete or args.only else 1
    finally:
        for yardstick_process in (yardstick, bare_proxy):
            if yardstick_process is not None:
                yardstick_process.terminate()
                yardstick_process.wait(timeout=30)
        stack.stop()
        stack.delete_redis_keys()
        if not args.keep:
            drop_databases(backing.postgres_url, stack.database_names.values())


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _hold(path: Path, bench: measure.Bench, pids: dict[str, int]) -> None:
    held = {"urls": bench.urls, "admin_token": bench.admin_token, "pids": pids}
    held["user_tokens"] = bench.user_tokens
    held["document_ids"] = bench.seeded.document_ids[:500]
    path.write_text(json.dumps(held, indent=2) + "\n")
    log(f"hold: the stack is up ({path}); Ctrl-C or SIGTERM stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        path.unlink(missing_ok=True)


def _search_vector_sql() -> str:
    """Content's own vector expression, as one UPDATE over every document."""
    from sqlalchemy import func
    from sqlalchemy.dialects import postgresql

    from subgraphs.content.models import Document
    from subgraphs.content.service.documents import weighted_vector
    from subgraphs.content.settings import ContentSettings

    vector = weighted_vector(
        ContentSettings().search_language,
        title=Document.title,
        tags=func.array_to_string(Document.tags, " "),
        metadata=Document.attributes,
        description=Document.description,
        body=Document.body_text,
    )
    compiled = vector.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return f"UPDATE documents SET search_vector = {compiled}"


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.post(url, json={}, timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _sign_in(identity: str, seeded: dataset.Seeded, count: int) -> dict[str, str]:
    """Real logins (argon2 and identity's signing key): user id -> access token."""
    tokens = {}
    with httpx.Client(base_url=identity, timeout=60) as client:
        for email, user_id in list(zip(seeded.emails, seeded.user_ids, strict=True))[:count]:
            response = client.post(
                "/api/v1/auth/login", json={"email": email, "password": dataset.PASSWORD}
            )
            response.raise_for_status()
            tokens[user_id] = response.json()["access_token"]
    return tokens


def _pids(stack: Stack) -> dict[str, int]:
    assert stack.supervisor is not None
    return {
        p.name: p.popen.pid
        for p in stack.supervisor.processes
        if p.popen is not None and p.name in ("router", *measure.SUBGRAPHS)
    }


def _machine() -> dict[str, Any]:
    memory = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(memory) / 1024 / 1024),
        "python": platform.python_version(),
        "os": platform.platform(),
    }


if __name__ == "__main__":
    sys.exit(main())
