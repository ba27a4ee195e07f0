"""GraphiQL at the router, in a real headless Chromium, with every non-local host blocked.

The page (Hive Laboratory) must load, introspect the graph, run a query and show the
result without fetching anything from the internet: this machine has none. Chromium is
driven over the DevTools protocol with the `websockets` client the suite already uses.
Without Chromium the test fails under CI (scripts/_bootstrap.sh installs it there) and is
skipped with the reason elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")

# Types an operation into the Laboratory's editor, presses Run and returns what the
# response panel shows. The UI lives in a shadow root; its editors are Monaco models.
RUN_QUERY = """(async (query) => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) {
      const found = find();
      if (found) return found;
      await sleep(100);
    }
    const editors = window.monaco?.editor.getEditors().map((e) => e.getValue().slice(0, 300));
    throw new Error('GraphiQL: no ' + what + ' after 30 s; editors: ' + JSON.stringify(editors));
  };
  const host = () => document.querySelector('.hive-laboratory-host');
  const root = await until(() => host()?.shadowRoot, 'UI');
  const button = (text) =>
    [...root.querySelectorAll('button')].find((b) => b.textContent.trim() === text);
  (await until(() => button('Add operation'), 'Add operation button')).click();
  const editorOf = (part) => window.monaco?.editor.getEditors().find(
    (e) => e.getModel()?.uri.toString().includes(part));
  (await until(() => editorOf('operation'), 'operation editor')).setValue(query);
  await sleep(200);
  (await until(() => button('Run'), 'Run button')).click();
  const shown = () => window.monaco.editor.getEditors().map((e) => e.getValue())
    .find((value) => value.includes('"data"') || value.includes('"errors"'));
  return await until(shown, 'result');
})"""


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


class DevTools:
    """Just enough of the Chrome DevTools protocol: calls, and the events seen meanwhile."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    async def wait_for_event(self, method: str, within: float) -> None:
        async def wait() -> None:
            while not any(event.get("method") == method for event in self.events):
                self.events.append(json.loads(await self.socket.recv()))

        await asyncio.wait_for(wait(), within)

    def requested_urls(self) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]


@contextmanager
def headless_chromium(executable: str, profile: Path) -> Iterator[str]:
    """Chromium running headless; yields the DevTools WebSocket URL of its page."""
    process = subprocess.Popen(
        [
            executable,
            "--headless=new",
            "--no-sandbox",  # root in CI
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            # Any host but the loopback resolves to nothing: a CDN fetch would fail.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{executable} did not start (exit {process.poll()})")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            targets = json.load(response)
        yield next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


async def test_graphiql_runs_a_query_offline_in_a_real_browser(stack, tmp_path) -> None:
    executable = find_chromium()
    if executable is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; scripts/_bootstrap.sh should have installed it in CI")
        pytest.skip(message)

    url = f"{stack.urls['router']}/graphql"
    query = "query Probe { __typename documents(first: 1) { nodes { id } } }"
    with headless_chromium(executable, tmp_path / "profile") as page:
        async with connect(page, max_size=None) as socket:
            browser = DevTools(socket)
            await browser.call("Network.enable")
            await browser.call("Page.enable")
            await browser.call("Page.navigate", url=url)
            await browser.wait_for_event("Page.loadEventFired", within=60)
            evaluated = await browser.call(
                "Runtime.evaluate",
                expression=f"{RUN_QUERY}({json.dumps(query)})",
                awaitPromise=True,
                returnByValue=True,
                timeout=60_000,
            )
            requested = browser.requested_urls()

    assert "exceptionDetails" not in evaluated, evaluated
    result = json.loads(evaluated["result"]["value"])
    assert result["data"]["__typename"] == "Query"
    assert "nodes" in result["data"]["documents"]
    # Everything the page loaded came from the router itself (or from its own blobs).
    router_host = urlparse(url).netloc
    external = [
        u
        for u in requested
        if urlparse(u).scheme in ("http", "https", "ws", "wss")
        and urlparse(u).netloc != router_host
    ]
    assert external == [], f"GraphiQL fetched from outside the router: {external}"
    assert url in requested
