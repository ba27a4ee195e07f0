"""The router plans with the Rust query planner, and refuses to start without it rather than
fall back to the JavaScript planner unnoticed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conftest import ROOT

ROUTER = ROOT / "router"
MISSING = {"router-runtime", "router-query-planner"}


def router_without_the_rust_planner(where: Path) -> Path:
    """A copy of the router's config whose node_modules lacks the Rust planner packages."""
    (where / "gateway.config.ts").write_text((ROUTER / "gateway.config.ts").read_text())
    (where / "plugins").symlink_to(ROUTER / "plugins")
    modules = where / "node_modules"
    (modules / "@graphql-hive").mkdir(parents=True)
    for entry in (ROUTER / "node_modules").iterdir():
        if entry.name != "@graphql-hive":
            (modules / entry.name).symlink_to(entry)
    for entry in (ROUTER / "node_modules" / "@graphql-hive").iterdir():
        if entry.name not in MISSING:
            (modules / "@graphql-hive" / entry.name).symlink_to(entry)
    return where / "gateway.config.ts"


async def test_the_router_refuses_to_start_without_the_rust_planner(tmp_path) -> None:
    config = router_without_the_rust_planner(tmp_path)
    process = await asyncio.create_subprocess_exec(
        str(ROUTER / "node_modules" / ".bin" / "hive-gateway"),
        "supergraph",
        "--config-path",
        str(config),
        "--port",
        "0",
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 1
    assert "cannot load the Rust query planner" in output.decode()


async def test_queries_are_planned_by_the_rust_planner(router) -> None:
    response = await router.post(
        "/graphql",
        json={"query": "{ documents(first: 1) { nodes { id owner { displayName } } } }"},
        headers={"x-hub-query-plan": "1"},
    )
    plan = response.json()["extensions"]["queryPlan"]
    # The Rust planner's plan: a sequence fetching content, then identity for the owners.
    text = str(plan)
    assert "Sequence" in text and "content" in text and "identity" in text
