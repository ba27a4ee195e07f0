"""The results as a Markdown table (README's Performance section shows the same table)."""

from __future__ import annotations

from typing import Any

# Every measurement a run must report; tests/test_bench_quick.py checks the JSON for them.
REQUIRED = (
    "router_overhead",
    "python_efficiency",
    "n_plus_one",
    "scale",
    "search",
    "dashboard_load",
    "subscriptions",
    "memory_mib",
)


def complete(document: dict[str, Any]) -> bool:
    return all(key in document["results"] for key in REQUIRED)


def _mark(met: bool) -> str:
    return "met" if met else "**missed**"


def table(document: dict[str, Any]) -> str:
    r = document["results"]
    rows = []
    ro = r["router_overhead"]
    rows.append(
        (
            "Router overhead (throughput via :8000 / direct, each at its best of "
            + " or ".join(str(c) for c in ro["clients"])
            + " clients)",
            f"{ro['router_rps']:.0f} / {ro['direct_rps']:.0f} req/s",
            f"{ro['ratio']:.2f}",
            ro["target"],
            _mark(ro["met"]),
        )
    )
    for clients, at in ro["by_clients"].items():
        rows.append(
            (
                f"  with {clients} clients: via :8000 / direct",
                f"{at['router_rps']:.0f} / {at['direct_rps']:.0f} req/s,"
                f" p50 {at['router_p50_ms']:.1f} / {at['direct_p50_ms']:.1f} ms",
                f"{at['ratio']:.2f}",
                "",
                "",
            )
        )
    rows.append(
        (
            "  the same through a bare Node proxy (node:http, forwarding only) / direct",
            f"{ro['bare_proxy_rps']:.0f} / {ro['direct_rps']:.0f} req/s",
            f"{ro['bare_proxy_ratio']:.2f}",
            "",
            "a reference: Node's own HTTP server and client",
        )
    )
    pe = r["python_efficiency"]
    rows.append(
        (
            "Python efficiency (GraphQL list of 20 / raw ASGI+asyncpg)",
            f"{pe['graphql_rps']:.0f} / {pe['yardstick_rps']:.0f} req/s",
            f"{pe['ratio']:.2f}",
            pe["target"],
            _mark(pe["met"]),
        )
    )
    rows.append(
        (
            "  the same query on a bare Strawberry schema, rows in memory / raw ASGI+asyncpg",
            f"{pe['strawberry_floor_rps']:.0f} / {pe['yardstick_rps']:.0f} req/s",
            f"{pe['floor_ratio']:.2f}",
            "",
            f"content reaches {pe['graphql_to_floor']:.2f} of it",
        )
    )
    n1 = r["n_plus_one"]
    statements = "/".join(str(v["statements"]) for v in n1["entities_statements"].values())
    rows.append(
        (
            "N+1: SQL statements, _entities of 1/10/100/1000 Documents",
            statements,
            "",
            "all equal",
            _mark(len(set(statements.split("/"))) == 1),
        )
    )
    dash = n1["dashboard"]
    fetches = "/".join(str(v["subgraph_fetches"]) for v in dash.values())
    dash_statements = "/".join(str(v["statements"]) for v in dash.values())
    plan = n1["dashboard_plan"]
    rows.append(
        (
            "N+1: dashboard via router, first 1/10/100: subgraph fetches",
            fetches,
            "",
            f"= plan's {plan['fetch_nodes']} fetches (depth {plan['depth']})",
            _mark(n1["fetches_equal_plan"]),
        )
    )
    rows.append(
        (
            "N+1: dashboard via router, first 1/10/100: SQL statements",
            dash_statements,
            "",
            "all equal",
            _mark(len(set(dash_statements.split("/"))) == 1),
        )
    )
    sc = r["scale"]
    latencies = " / ".join(f"{v['p50_ms']:.1f}" for v in sc["latency"].values())
    rows.append(
        (
            "Scale: p50 ms for 1/10/100/1000 items",
            latencies,
            f"exp {sc['exponent_1_to_1000']:.2f}",
            "<= linear",
            _mark(sc["met"]),
        )
    )
    se = r["search"]
    rows.append(
        (
            "Search p95 (searchDocuments / raw tsquery)",
            f"{se['graphql_p95_ms']:.1f} / {se['raw_tsquery_p95_ms']:.1f} ms",
            f"{se['ratio']:.2f}",
            se["target"],
            _mark(se["met"]),
        )
    )
    su = r["subscriptions"]
    rows.append(
        (
            f"Subscriptions: {su['router']['subscribers']} via router, p99 event->client / Redis",
            f"{su['router']['p99_ms']:.1f} / {su['redis']['p99_ms']:.1f} ms,"
            f" {su['router']['errors']} errors",
            f"{su['ratio_p99']:.2f}",
            su["target"],
            _mark(su["met"]),
        )
    )
    dl = r["dashboard_load"]
    rows.append(
        (
            "Dashboard (first 10) via router",
            f"{dl['rps']:.0f} req/s, p95 {dl['p95_ms']:.0f} ms",
            "",
            "",
            "",
        )
    )
    if "soak" in r:
        so = r["soak"]
        growth = ", ".join(
            f"{k} {v:+.0%}" if k != "router" else f"router's heap retained {v:+.0%}"
            for k, v in so["growth_after_warmup"].items()
        )
        if so.get("router_rss_mib_range_after_warmup"):
            low, high = so["router_rss_mib_range_after_warmup"]
            growth += (
                f" (router's RSS {so['rss_growth_after_warmup']['router']:+.0%}, "
                f"between {low:.0f} and {high:.0f} MiB)"
            )
        rows.append(
            (
                f"Soak {so['minutes']:g} min: memory growth after warm-up",
                growth,
                "",
                so["target"],
                _mark(so["met"]),
            )
        )
    memory = r["memory_mib"]["after"]
    rows.append(
        (
            "RSS after the run (MiB)",
            ", ".join(f"{k} {v:.0f}" for k, v in memory.items()),
            "",
            "",
            "",
        )
    )
    header = ("measurement", "values", "ratio", "target", "")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    machine = document["machine"]
    lines.append("")
    lines.append(
        f"{document['mode']} run, {document['seconds_total']:.0f} s; data set:"
        f" {document['data_set']}; {machine['cores']} cores ({machine['cpu']}),"
        f" {machine['memory_gib']} GiB, Python {machine['python']}"
    )
    return "\n".join(lines)
