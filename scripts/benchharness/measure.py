"""The measurements: each one a pair run side by side, reported as a ratio (or counts)."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import random
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from . import load, subscribers
from .cpu import CpuMeter, process_seconds
from .dataset import Seeded

SUBGRAPHS = ("identity", "content", "communication", "workflow")

DOCUMENT = "query Document($id: ID!) { document(id: $id) { id title status owner { id } } }"
DOCUMENTS = (
    "query Documents($first: Int!) { documents(first: $first) { nodes { id title owner { id } } } }"
)
SEARCH = (
    "query Search($query: String!) { searchDocuments(query: $query, first: 20)"
    " { nodes { rank document { id title } } } }"
)
ENTITIES = (
    "query Entities($representations: [_Any!]!) { _entities(representations: $representations)"
    " { ... on Document { id title status owner { id } latestVersion { number size }"
    " myPermission } } }"
)
DASHBOARD = """query Dashboard($first: Int!) {
  me {
    id
    displayName
    documents(first: $first) {
      nodes { id title owner { id displayName } workflows { id state } }
    }
    notifications(first: $first) { nodes { id title } }
    tasks(first: $first) { nodes { id title } }
  }
}
"""


@dataclass
class Bench:
    """Where things are, who signs in, and how long each load runs."""

    urls: dict[str, str]  # router, identity, ..., yardstick
    admin_token: str
    user_tokens: dict[str, str]  # user id -> token (members)
    seeded: Seeded
    work_dir: Path
    seconds: float
    rounds: int
    redis_url: str
    communication_prefix: str
    root: Path
    subscribers: int
    log: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)
    # Processes whose CPU per request each load reports (router, subgraphs, yardstick).
    pids: dict[str, int] = field(default_factory=dict)

    def gql(self, service: str) -> str:
        return f"{self.urls[service]}/graphql"


def _auth(token: str) -> str:
    return f"Bearer {token}"


def _check(url: str, authorization: str, body: dict[str, Any]) -> dict[str, Any]:
    """One request outside wrk: a workload that errors must fail the harness, not look fast."""
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.post(url, json=body, headers=headers, timeout=60)
    data = response.json()
    if response.status_code != 200 or data.get("errors"):
        raise RuntimeError(f"{url} answered {response.status_code}: {str(data)[:500]}")
    return data


def _send(url: str, authorization: str, body: dict[str, Any]) -> None:
    _check(url, authorization, body)


def _wrk(
    bench: Bench,
    name: str,
    url: str,
    lines: list[tuple[str, dict[str, Any]]],
    *,
    connections: int,
    seconds: float | None = None,
) -> load.Result:
    _check(url, *lines[0])
    requests = load.write_requests(bench.work_dir / f"{name}.requests", lines)
    meter = CpuMeter(bench.pids)
    before = meter.snapshot()
    result = load.run(
        url,
        requests,
        seconds=seconds or bench.seconds,
        connections=connections,
        work_dir=bench.work_dir,
    )
    result = replace(result, cpu_ms=meter.per_request(before, meter.snapshot(), result.requests))
    bench.log(
        f"  {name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p95 {result.p95_ms:.1f} ms,"
        f" errors {result.errors}; CPU ms per request: "
        + ", ".join(f"{process} {ms:.2f}" for process, ms in result.cpu_ms.items())
    )
    if result.errors:
        raise RuntimeError(f"{name}: {result.errors} errors under load: {result.error_samples}")
    return result


def _interleaved(bench: Bench, *loads: Callable[[], load.Result]) -> list[list[load.Result]]:
    """Interleaved rounds (a, b, a, b, ...): slow drifts of a shared machine hit them all.
    The results of each load, in the order given."""
    results: list[list[load.Result]] = [[] for _ in loads]
    for _ in range(bench.rounds):
        for run, into in zip(loads, results, strict=True):
            into.append(run())
    return results


def _warm_up(bench: Bench, *loads: Callable[[], load.Result]) -> None:
    """Each load once before its measured rounds, not counted: the router's JIT compiler
    and every cache on both sides warm, as in services that have been up a while (the
    router's first round ran at 0.95 ms of CPU a request, its later ones at 0.57)."""
    bench.log("  warm-up, not counted:")
    for run in loads:
        run()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _mean_cpu(results: list[load.Result]) -> dict[str, float]:
    processes = {process for result in results for process in result.cpu_ms}
    return {
        process: round(_mean([result.cpu_ms.get(process, 0.0) for result in results]), 3)
        for process in sorted(processes)
    }


# --- router overhead ---------------------------------------------------------------------

# Clients at once. Throughput is what a path serves at its busiest, and how many clients
# it takes to get there differs by path and by run (the router's path, one hop longer,
# waits more on round trips; content handles more requests per wake-up when more come at
# once), so each path runs with both and is judged at its best. 40 is also more requests
# at once than a subgraph's pool keeps connections (10), which once made content open and
# close connections all the time (800 to 960 req/s against 2,300 at 10 clients).
CLIENTS = (10, 40)


def router_overhead(bench: Bench) -> None:
    ids = bench.seeded.document_ids[:500]
    lines = [(_auth(bench.admin_token), {"query": DOCUMENT, "variables": {"id": i}}) for i in ids]
    paths = {
        "router": bench.gql("router"),
        "direct": bench.gql("content"),
        # The same requests through a bare Node proxy (Node's HTTP server and client,
        # nothing else): what a router on Node's http module adds at least, for reference.
        "bare_proxy": f"{bench.urls['bare_proxy']}/graphql",
    }
    names = {
        "router": "document-via-router",
        "direct": "document-direct",
        "bare_proxy": "document-via-bare-proxy",
    }
    loads = {
        (path, clients): functools.partial(
            _wrk, bench, f"{names[path]}-{clients}", url, lines, connections=clients
        )
        for clients in CLIENTS
        for path, url in paths.items()
    }
    _warm_up(bench, *loads.values())
    measured = dict(zip(loads, _interleaved(bench, *loads.values()), strict=True))
    rps = {key: _mean([r.rps for r in results]) for key, results in measured.items()}

    def busiest(path: str) -> float:
        return max(rps[path, clients] for clients in CLIENTS)

    by_clients = {
        str(clients): {
            "router_rps": rps["router", clients],
            "direct_rps": rps["direct", clients],
            "bare_proxy_rps": rps["bare_proxy", clients],
            "ratio": rps["router", clients] / rps["direct", clients],
            "router_p50_ms": _mean([r.p50_ms for r in measured["router", clients]]),
            "direct_p50_ms": _mean([r.p50_ms for r in measured["direct", clients]]),
            "router_p95_ms": _mean([r.p95_ms for r in measured["router", clients]]),
            # Where each request's CPU went ("machine": every process, wrk included).
            "cpu_ms_via_router": _mean_cpu(measured["router", clients]),
            "cpu_ms_direct": _mean_cpu(measured["direct", clients]),
            "cpu_ms_via_bare_proxy": _mean_cpu(measured["bare_proxy", clients]),
        }
        for clients in CLIENTS
    }
    ratio = busiest("router") / busiest("direct")
    bench.results["router_overhead"] = {
        "query": "document(id) { id title status owner { id } } — content only",
        "clients": list(CLIENTS),
        # Each path's throughput: its best over the numbers of clients.
        "router_rps": busiest("router"),
        "direct_rps": busiest("direct"),
        "ratio": ratio,
        "target": ">= 0.8",
        "met": ratio >= 0.8,
        "bare_proxy_rps": busiest("bare_proxy"),
        "bare_proxy_ratio": busiest("bare_proxy") / busiest("direct"),
        "by_clients": by_clients,
    }


# --- Python efficiency -------------------------------------------------------------------


def python_efficiency(bench: Bench) -> None:
    gql = [(_auth(bench.admin_token), {"query": DOCUMENTS, "variables": {"first": 20}})]
    raw: list[tuple[str, dict[str, Any]]] = [("", {"first": 20})]
    floor = [("", gql[0][1])]
    floor_url = f"{bench.urls['yardstick']}/floor"
    a = _check(bench.gql("content"), *gql[0])["data"]["documents"]["nodes"]
    b = _check(f"{bench.urls['yardstick']}/documents", *raw[0])["data"]["documents"]["nodes"]
    c = _check(floor_url, *floor[0])["data"]["documents"]["nodes"]
    if not a == b == c:
        raise RuntimeError("the yardsticks' JSON differs from content's answer")

    def subgraph() -> load.Result:
        return _wrk(bench, "documents-graphql", bench.gql("content"), gql, connections=10)

    def raw_asgi() -> load.Result:
        url = f"{bench.urls['yardstick']}/documents"
        return _wrk(bench, "documents-yardstick", url, raw, connections=10)

    def strawberry_floor() -> load.Result:
        return _wrk(bench, "documents-strawberry-floor", floor_url, floor, connections=10)

    _warm_up(bench, subgraph, raw_asgi, strawberry_floor)
    graphql, yardstick, bare = _interleaved(bench, subgraph, raw_asgi, strawberry_floor)
    rps_g, rps_y = _mean([r.rps for r in graphql]), _mean([r.rps for r in yardstick])
    rps_f = _mean([r.rps for r in bare])
    bench.results["python_efficiency"] = {
        "query": "documents(first: 20) { nodes { id title owner { id } } } on content",
        "graphql_rps": rps_g,
        "yardstick_rps": rps_y,
        "ratio": rps_g / rps_y,
        "target": ">= 0.5",
        "met": rps_g / rps_y >= 0.5,
        # The same query on a bare Strawberry schema with the rows in memory: what
        # GraphQL execution alone costs, whatever a subgraph does around it.
        "strawberry_floor_rps": rps_f,
        "floor_ratio": rps_f / rps_y,
        "graphql_to_floor": rps_g / rps_f,
        "cpu_ms_graphql": _mean_cpu(graphql),
        "cpu_ms_yardstick": _mean_cpu(yardstick),
        "cpu_ms_floor": _mean_cpu(bare),
    }


# --- N+1: statements and fetches per request ---------------------------------------------

_SAMPLE = re.compile(r"^(hub_db_statements_total|hub_http_requests_total)\{([^}]*)\} ([0-9.e+]+)$")


def _counters(bench: Bench) -> dict[str, tuple[float, float]]:
    """Per subgraph: (SQL statements so far, GraphQL requests so far)."""
    found = {}
    for service in SUBGRAPHS:
        text = httpx.get(f"{bench.urls[service]}/metrics", timeout=30).text
        statements = requests = 0.0
        for line in text.splitlines():
            match = _SAMPLE.match(line)
            if not match:
                continue
            name, labels, value = match.groups()
            if name == "hub_db_statements_total" and 'origin="request"' in labels:
                statements += float(value)
            elif 'route="/graphql"' in labels and 'method="POST"' in labels:
                requests += float(value)
        found[service] = (statements, requests)
    return found


def _per_request(bench: Bench, send: Callable[[], None]) -> dict[str, dict[str, int]]:
    """Statements and GraphQL requests each subgraph handled for one request.

    Background loops (identity's outbox relay, readiness probes) only add: the smallest
    of a few samples is the request's own count.
    """
    best: dict[str, dict[str, int]] | None = None
    for _ in range(3 if bench.rounds == 1 else 5):
        before = _counters(bench)
        send()
        after = _counters(bench)
        sample = {
            service: {
                "statements": round(after[service][0] - before[service][0]),
                "fetches": round(after[service][1] - before[service][1]),
            }
            for service in SUBGRAPHS
        }
        if best is None or _total(sample) < _total(best):
            best = sample
    assert best is not None
    return best


def _total(sample: dict[str, dict[str, int]]) -> int:
    return sum(v["statements"] + v["fetches"] for v in sample.values())


def _plan(bench: Bench, operation: str) -> dict[str, Any]:
    path = bench.work_dir / "dashboard.graphql"
    path.write_text(operation)
    out = subprocess.run(
        [
            "node",
            str(Path(__file__).parent / "plan.mjs"),
            str(bench.root / "router"),
            str(bench.root / "schema" / "supergraph.graphql"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    plan = json.loads(out.stdout)

    def walk(node: dict[str, Any] | None) -> tuple[int, int]:  # (fetches, depth)
        if not node:
            return 0, 0
        kind = node["kind"]
        if kind in ("Fetch", "BatchFetch"):
            return 1, 1
        if kind == "Flatten":
            return walk(node["node"])
        if kind == "Sequence":
            parts = [walk(n) for n in node["nodes"]]
            return sum(p[0] for p in parts), sum(p[1] for p in parts)
        if kind == "Parallel":
            parts = [walk(n) for n in node["nodes"]]
            return sum(p[0] for p in parts), max((p[1] for p in parts), default=0)
        if kind == "Condition":
            a, b = walk(node.get("ifClause")), walk(node.get("elseClause"))
            return max(a[0], b[0]), max(a[1], b[1])
        raise ValueError(f"unexpected plan node {kind}")

    fetches, depth = walk(plan.get("node"))
    return {"fetch_nodes": fetches, "depth": depth}


def n_plus_one(bench: Bench) -> None:
    admin = _auth(bench.admin_token)
    entities: dict[str, Any] = {}
    for n in (1, 10, 100, 1000):
        reps = [{"__typename": "Document", "id": i} for i in bench.seeded.document_ids[:n]]
        body = {"query": ENTITIES, "variables": {"representations": reps}}
        returned = len(_check(bench.gql("content"), admin, body)["data"]["_entities"])
        counts = _per_request(bench, functools.partial(_send, bench.gql("content"), admin, body))
        entities[str(n)] = {"items": returned, "statements": counts["content"]["statements"]}
    token = next(iter(bench.user_tokens.values()))
    dashboard: dict[str, Any] = {}
    for n in (1, 10, 100):
        body = {"query": DASHBOARD, "variables": {"first": n}}
        data = _check(bench.gql("router"), _auth(token), body)["data"]["me"]
        counts = _per_request(
            bench, functools.partial(_send, bench.gql("router"), _auth(token), body)
        )
        dashboard[str(n)] = {
            "documents": len(data["documents"]["nodes"]),
            "workflows": sum(len(d["workflows"]) for d in data["documents"]["nodes"]),
            "notifications": len(data["notifications"]["nodes"]),
            "tasks": len(data["tasks"]["nodes"]),
            "subgraph_fetches": sum(c["fetches"] for c in counts.values()),
            "statements": sum(c["statements"] for c in counts.values()),
            "per_subgraph": counts,
        }
    plan = _plan(bench, DASHBOARD)
    statements_equal = len({v["statements"] for v in entities.values()}) == 1
    dash_fetches = {v["subgraph_fetches"] for v in dashboard.values()}
    dash_statements = {v["statements"] for v in dashboard.values()}
    bench.results["n_plus_one"] = {
        "entities_statements": entities,
        "dashboard": dashboard,
        "dashboard_plan": plan,
        "statements_constant": statements_equal and len(dash_statements) == 1,
        "fetches_constant": len(dash_fetches) == 1,
        "fetches_equal_plan": dash_fetches == {plan["fetch_nodes"]},
        "target": "statements equal for 1/10/100/1000 items; fetches = the plan's",
        "met": statements_equal
        and len(dash_statements) == 1
        and dash_fetches == {plan["fetch_nodes"]},
    }


# --- scale -------------------------------------------------------------------------------


def scale(bench: Bench) -> None:
    """Latency of one request at a time (no queueing) for 1, 10, 100 and 1,000 items."""
    admin = _auth(bench.admin_token)
    ids = bench.seeded.document_ids
    rng = random.Random(1)
    sizes = (1, 10, 100, 1000)
    repeats = 3 if bench.rounds == 1 else 10
    latency: dict[str, Any] = {}
    with httpx.Client(headers={"Authorization": admin}, timeout=120) as client:
        for n in sizes:
            timings = []
            for i in range(repeats + 1):  # the first one warms caches up and is not counted
                reps = [{"__typename": "Document", "id": d} for d in rng.sample(ids, n)]
                body = {"query": ENTITIES, "variables": {"representations": reps}}
                begun = time.perf_counter()
                response = client.post(bench.gql("content"), json=body)
                elapsed = (time.perf_counter() - begun) * 1000
                data = response.json()
                if data.get("errors") or len(data["data"]["_entities"]) != n:
                    raise RuntimeError(f"_entities of {n}: {str(data)[:300]}")
                if i:
                    timings.append(elapsed)
            timings.sort()
            latency[str(n)] = {
                "p50_ms": timings[len(timings) // 2],
                "min_ms": timings[0],
                "samples": len(timings),
            }
            bench.log(f"  entities-{n}: p50 {latency[str(n)]['p50_ms']:.1f} ms")
    steps = []
    for small, big in itertools.pairwise(sizes):
        growth = latency[str(big)]["p50_ms"] / latency[str(small)]["p50_ms"]
        steps.append(
            {"from": small, "to": big, "latency_growth": growth, "size_growth": big / small}
        )
    first, last = latency["1"]["p50_ms"], latency["1000"]["p50_ms"]
    exponent = math.log(last / first) / math.log(1000)
    bench.results["scale"] = {
        "query": "_entities of N Documents (title, owner, latestVersion, myPermission), content",
        "latency": latency,
        "steps": steps,
        "exponent_1_to_1000": exponent,
        "target": "latency grows at most linearly (every step's growth <= size growth)",
        "met": all(s["latency_growth"] <= s["size_growth"] for s in steps),
    }


# --- search ------------------------------------------------------------------------------


def search(bench: Bench) -> None:
    rng = random.Random(2)
    words = bench.seeded.words
    queries = [f"{rng.choice(words)} {rng.choice(words)}" for _ in range(200)]
    admin = _auth(bench.admin_token)
    gql = [(admin, {"query": SEARCH, "variables": {"query": q}}) for q in queries]
    raw: list[tuple[str, dict[str, Any]]] = [("", {"query": q}) for q in queries]
    graphql, yardstick = _interleaved(
        bench,
        lambda: _wrk(bench, "search-graphql", bench.gql("content"), gql, connections=4),
        lambda: _wrk(
            bench, "search-raw-tsquery", f"{bench.urls['yardstick']}/search", raw, connections=4
        ),
    )
    p95_g, p95_r = _mean([r.p95_ms for r in graphql]), _mean([r.p95_ms for r in yardstick])
    bench.results["search"] = {
        "query": "searchDocuments(query: two words, first: 20) over every document (admin)",
        "graphql_p95_ms": p95_g,
        "raw_tsquery_p95_ms": p95_r,
        "graphql_rps": _mean([r.rps for r in graphql]),
        "raw_rps": _mean([r.rps for r in yardstick]),
        "ratio": p95_g / p95_r,
        "target": "<= 2.0",
        "met": p95_g / p95_r <= 2.0,
    }


# --- dashboard latency through the router -----------------------------------------------


def dashboard_load(bench: Bench) -> None:
    lines = [
        (_auth(token), {"query": DASHBOARD, "variables": {"first": 10}})
        for token in bench.user_tokens.values()
    ]
    result = _wrk(bench, "dashboard-via-router", bench.gql("router"), lines, connections=8)
    bench.results["dashboard_load"] = {
        "query": "Dashboard(first: 10) through the router, one signed-in user per request",
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p95_ms": result.p95_ms,
    }


# --- subscriptions -----------------------------------------------------------------------


def subscriptions(bench: Bench) -> None:
    ws_url = bench.gql("router").replace("http://", "ws://")

    def active() -> int:
        text = httpx.get(f"{bench.urls['communication']}/metrics", timeout=30).text
        found = re.search(r"^hub_graphql_subscriptions_active\{[^}]*\} ([0-9.]+)$", text, re.M)
        return int(float(found.group(1))) if found else 0

    # Every user gets an event per round: with the full set 1,000 events and 5,000 frames, so
    # that each path's p99 rests on its 50 slowest frames (ten events) rather than 30.
    rounds = 5
    # CPU of communication and the router while the events are published (per frame
    # delivered, below), and communication's collections in that window.
    pids = {name: bench.pids.get(name) for name in ("communication", "router")}
    cpu: dict[str, float] = {}
    gc_publishing: dict[str, Any] = {}

    marks: dict[str, GcPauses] = {}

    def on_publish(starting: bool) -> None:
        for name, pid in pids.items():
            if pid is not None:
                seconds = process_seconds(pid)
                cpu[name] = seconds if starting else seconds - cpu[name]
        if starting:
            bench.log(f"  subscriptions: {bench.subscribers} held, publishing")
            marks["publishing"] = GcPauses.of(bench.urls["communication"])
        else:
            gc_publishing.update(
                GcPauses.of(bench.urls["communication"]).since(marks["publishing"])
            )

    paused_before = GcPauses.of(bench.urls["communication"])
    routed = asyncio.run(
        subscribers.through_router(
            ws_url,
            bench.user_tokens,
            bench.redis_url,
            bench.communication_prefix,
            subscribers=bench.subscribers,
            rounds=rounds,
            hold_seconds=min(10.0, bench.seconds),
            on_publish=on_publish,
        )
    )
    paused = GcPauses.of(bench.urls["communication"]).since(paused_before)
    direct = asyncio.run(
        subscribers.direct_redis(
            bench.redis_url, list(bench.user_tokens), subscribers=bench.subscribers, rounds=rounds
        )
    )
    ratio = routed.p99_ms / direct.p99_ms
    frames = max(1, routed.received)
    bench.log(
        f"  subscriptions: {routed.connected}/{routed.subscribers} held, {routed.errors} errors,"
        f" p99 {routed.p99_ms:.1f} ms vs Redis {direct.p99_ms:.1f} ms;"
        f" communication: {paused['count']:.0f} collections, {paused['ms']:.0f} ms,"
        f" the longest over {paused['longest_over_ms']:.0f} ms ({paused['ms_by_generation']});"
        f" while publishing: {gc_publishing.get('count', 0):.0f} collections,"
        f" {gc_publishing.get('ms', 0):.0f} ms; CPU per frame"
        + "".join(f" {name} {1000 * s / frames:.2f} ms," for name, s in cpu.items())
        + f" harness {routed.harness.get('cpu_ms', 0) / frames:.2f} ms"
        f" (bare Redis: {direct.harness.get('cpu_ms', 0) / max(1, direct.received):.2f} ms);"
        f" harness collections {routed.harness.get('gc_count')} / {direct.harness.get('gc_count')}"
    )
    bench.results["subscriptions"] = {
        "router": asdict(routed),
        "redis": asdict(direct),
        "ratio_p99": ratio,
        # Communication's garbage collections while the subscribers were served.
        "communication_gc": paused,
        "communication_gc_while_publishing": gc_publishing,
        # CPU (ms) per frame delivered through the router, while the events were published.
        "cpu_ms_per_frame": {
            **{name: round(1000 * seconds / frames, 3) for name, seconds in cpu.items()},
            "harness": round(routed.harness.get("cpu_ms", 0) / frames, 3),
            "harness_bare_redis": round(
                direct.harness.get("cpu_ms", 0) / max(1, direct.received), 3
            ),
        },
        "target": "all held without errors; p99 <= 3x Redis",
        "met": routed.errors == 0 and routed.connected == routed.subscribers and ratio <= 3.0,
    }


_GC_BUCKET = re.compile(r'^hub_gc_pause_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+]+)$')


@dataclass
class GcPauses:
    """A service's garbage collections so far, from `hub_gc_pause_seconds` on /metrics."""

    count: float
    seconds: float
    buckets: dict[float, float]  # upper bound (s) -> collections that took at most that
    seconds_by_generation: dict[str, float]

    @classmethod
    def of(cls, base_url: str) -> GcPauses:
        text = httpx.get(f"{base_url}/metrics", timeout=30).text
        count = seconds = 0.0
        buckets: dict[float, float] = {}
        by_generation: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("hub_gc_pause_seconds_count"):
                count += float(line.rsplit(" ", 1)[1])
            elif line.startswith("hub_gc_pause_seconds_sum"):
                seconds += float(line.rsplit(" ", 1)[1])
                generation = re.search(r'generation="(\d)"', line)
                if generation:
                    by_generation[generation.group(1)] = float(line.rsplit(" ", 1)[1])
            elif match := _GC_BUCKET.match(line):
                bound = float(match.group(1))
                buckets[bound] = buckets.get(bound, 0.0) + float(match.group(2))
        return cls(count, seconds, buckets, by_generation)

    def since(self, before: GcPauses) -> dict[str, Any]:
        """Collections between `before` and this: how many, their total and the slowest's
        bucket (the lower bound, in ms, of the slowest one)."""
        count = self.count - before.count
        below = [
            bound
            for bound, n in sorted(self.buckets.items())
            if n - before.buckets.get(bound, 0.0) < count
        ]
        return {
            "count": count,
            "ms": round(1000 * (self.seconds - before.seconds), 1),
            "longest_over_ms": 1000 * max(below, default=0.0),
            "ms_by_generation": {
                generation: round(
                    1000 * (spent - before.seconds_by_generation.get(generation, 0)), 1
                )
                for generation, spent in self.seconds_by_generation.items()
            },
        }


def rss_of_processes(pids: dict[str, int]) -> dict[str, float]:
    """Resident memory (MiB) of each process with its children."""
    out = {}
    for name, pid in pids.items():
        total = 0
        for p in [pid, *_children(pid)]:
            try:
                status = Path(f"/proc/{p}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            total += int(found.group(1)) if found else 0
        out[name] = total / 1024
    return out


def _children(pid: int) -> list[int]:
    try:
        direct = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for d in direct for c in (d, *_children(d))]


ROUTER_HEAP = "router_heap_retained"
_RETAINED = re.compile(r"^hub_router_heap_retained_bytes ([0-9.e+]+)$", re.M)


def _router_heap_retained_mib(bench: Bench) -> float:
    """The router's V8 heap after its latest full collection (router/plugins/metrics.ts)."""
    text = httpx.get(f"{bench.urls['router']}/metrics", timeout=30).text
    found = _RETAINED.search(text)
    if not found:
        raise RuntimeError("the router's /metrics has no hub_router_heap_retained_bytes")
    return float(found.group(1)) / 2**20


def soak(bench: Bench, pids: dict[str, int], minutes: float) -> None:
    """Mixed load through the router for `minutes`, memory sampled every 30 s."""
    lines = [
        (_auth(token), {"query": DASHBOARD, "variables": {"first": 10}})
        for token in bench.user_tokens.values()
    ] + [
        (_auth(bench.admin_token), {"query": DOCUMENT, "variables": {"id": i}})
        for i in bench.seeded.document_ids[:200]
    ]
    requests = load.write_requests(bench.work_dir / "soak.requests", lines)

    def sample(t: float) -> dict[str, float]:
        return {"t": t, **rss_of_processes(pids), ROUTER_HEAP: _router_heap_retained_mib(bench)}

    samples = [sample(0.0)]
    started = time.monotonic()
    end = started + minutes * 60
    total_requests = total_errors = 0
    error_samples: list[str] = []
    while time.monotonic() < end:
        chunk = min(30.0, end - time.monotonic())
        if chunk < 1:
            break
        result = load.run(
            bench.gql("router"), requests, seconds=chunk, connections=8, work_dir=bench.work_dir
        )
        total_requests += result.requests
        total_errors += result.errors
        error_samples += result.error_samples[: 5 - len(error_samples)]
        samples.append(sample(round(time.monotonic() - started, 1)))
        bench.log(
            f"  soak {samples[-1]['t']:.0f}s: "
            + ", ".join(f"{k} {v:.0f}" for k, v in samples[-1].items() if k != "t")
            + " MiB"
        )

    warm = samples[max(1, len(samples) // 3) :]  # from the end of the first third: caches warm

    def growth_of(name: str) -> float:
        return (samples[-1][name] - warm[0][name]) / warm[0][name] if warm[0][name] else 0.0

    rss_growth = {name: growth_of(name) for name in pids}
    # What each process keeps: a Python process's resident memory (reference counting frees
    # as it goes); for the router, the V8 heap left after a full collection. Its resident
    # memory rises and falls by hundreds of MiB with its collections (the heap grows well
    # past what is alive before one), so two samples of it say when they were taken, not
    # whether it leaks; it is reported beside.
    growth = {**rss_growth, "router": growth_of(ROUTER_HEAP)}
    bench.results["soak"] = {
        "minutes": minutes,
        "requests": total_requests,
        "errors": total_errors,
        "error_samples": error_samples,
        "rss_mib": samples,
        "growth_after_warmup": growth,
        "rss_growth_after_warmup": rss_growth,
        "router_rss_mib_range_after_warmup": [
            min(s["router"] for s in warm),
            max(s["router"] for s in warm),
        ],
        "target": "flat memory (growth after the first third < 10%: resident memory of each "
        "subgraph, heap retained after full collections of the router)",
        "met": all(g < 0.10 for g in growth.values()) and total_errors == 0,
    }
