"""Subscriptions through the router: WebSocket and SSE, authenticated, ended with their token.

A client subscribes to the router over graphql-transport-ws (token in `connection_init`) or
SSE (token in the Authorization header); the router always reaches the subgraph over
WebSocket with the client's token in that socket's `connection_init`. The subgraph ends the
subscription when the token expires or its session is revoked, and the client sees it end.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import Account, sign_up
from integration.conftest import execute, graphql_ws
from prometheus_client.parser import text_string_to_metric_families
from router.conftest import short_lived_token

from subgraphs.common.auth import SESSION_REVOKED_CHANNEL, SessionRevocations

NOTIFICATIONS = "subscription { notificationAdded { title } }"
SEND = "mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id } }"


class SSESubscription:
    """One GraphQL-over-SSE subscription (the router's "distinct connections" mode)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        event, data = "message", ""
        async for line in self.response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "":
                if data or event == "complete":
                    await self.events.put((event, json.loads(data) if data else None))
                event, data = "message", ""
        await self.events.put(("closed", None))

    async def receive(self, within: float) -> tuple[str, Any]:
        return await asyncio.wait_for(self.events.get(), within)

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self.response.aclose()


@asynccontextmanager
async def graphql_sse(
    router: httpx.AsyncClient, query: str, token: str | None
) -> AsyncIterator[SSESubscription]:
    headers = {"accept": "text/event-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = router.build_request("POST", "/graphql", json={"query": query}, headers=headers)
    response = await router.send(request, stream=True)
    subscription = SSESubscription(response)
    try:
        yield subscription
    finally:
        await subscription.close()


async def notify(router: httpx.AsyncClient, account: Account, title: str) -> None:
    variables = {"i": {"recipientId": account.id, "title": title}}
    await execute(router, SEND, variables, account.headers)


async def until_live(
    router: httpx.AsyncClient, account: Account, receive: Callable[[], Awaitable[Any]]
) -> Any:
    """A subscription is live once the subgraph listens: notify until one arrives."""
    for attempt in range(30):
        await notify(router, account, f"Warm #{attempt}")
        try:
            return await asyncio.wait_for(receive(), timeout=1.0)
        except TimeoutError:
            continue
    raise AssertionError("the subscription never received a notification")


# --- SSE -------------------------------------------------------------------------------


async def test_sse_subscriber_with_a_bearer_token_receives_notifications(router, account) -> None:
    async with graphql_sse(router, NOTIFICATIONS, account.access_token) as sse:
        assert sse.response.status_code == 200
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        event, payload = await until_live(router, account, lambda: sse.receive(60))
        assert event == "next"
        assert payload["data"]["notificationAdded"]["title"].startswith("Warm #")
        await notify(router, account, "Live")
        event, payload = await sse.receive(5)
    assert (event, payload) == ("next", {"data": {"notificationAdded": {"title": "Live"}}})


async def test_sse_subscriber_without_a_token_is_refused(router) -> None:
    async with graphql_sse(router, NOTIFICATIONS, None) as sse:
        event, payload = await sse.receive(30)
    assert event == "next"
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert payload.get("data") is None


async def test_sse_subscriber_with_a_bad_token_is_refused(router, account) -> None:
    forged = account.access_token[:-4] + ("AAAA" if account.access_token[-4:] != "AAAA" else "BBBB")
    async with graphql_sse(router, NOTIFICATIONS, forged) as sse:
        assert sse.response.status_code == 401
        event, payload = await sse.receive(10)
    assert event == "next"
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_ws_subscriber_with_a_bad_token_is_refused(stack, account) -> None:
    forged = account.access_token[:-4] + ("AAAA" if account.access_token[-4:] != "AAAA" else "BBBB")
    async with graphql_ws(ws_url(stack), forged) as client:
        await client.subscribe(NOTIFICATIONS)
        refused = await asyncio.wait_for(client.receive(), timeout=30)
    assert refused["type"] in ("next", "error")
    errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- the token's lifetime --------------------------------------------------------------


async def logout(router: httpx.AsyncClient, account: Account) -> None:
    response = await router.post("/api/v1/auth/logout", headers=account.headers)
    assert response.status_code == 204, response.text


async def test_ws_subscription_ends_when_its_token_expires(stack, router, apps, account) -> None:
    token = await short_lived_token(apps, account, seconds=4)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    async with graphql_ws(ws_url(stack), token) as client:
        await client.subscribe(NOTIFICATIONS)
        live = await until_live(router, account, client.receive)
        assert live["type"] == "next"
        ending = await next_not_data(client.receive, within=15)
        ended_at = time.time()
        completed = await asyncio.wait_for(client.receive(), timeout=5)
    assert ending["type"] == "next", ending
    assert ending["payload"]["data"] is None
    error = ending["payload"]["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["reason"] == "expired"
    assert completed["type"] == "complete"
    assert expires_at <= ended_at < expires_at + 2


async def test_sse_subscription_ends_when_its_token_expires(router, apps, account) -> None:
    token = await short_lived_token(apps, account, seconds=4)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    async with graphql_sse(router, NOTIFICATIONS, token) as sse:
        await until_live(router, account, lambda: sse.receive(60))
        event, payload = await next_not_data(lambda: sse.receive(15), within=15)
        ended_at = time.time()
        after = await sse.receive(5)
    assert event == "next"
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert payload["errors"][0]["extensions"]["reason"] == "expired"
    assert after[0] in ("complete", "closed")
    assert expires_at <= ended_at < expires_at + 2


async def test_ws_subscription_ends_when_its_session_is_revoked(stack, router) -> None:
    account = await sign_up(router)
    async with graphql_ws(ws_url(stack), account.access_token) as client:
        await client.subscribe(NOTIFICATIONS)
        await until_live(router, account, client.receive)
        started = time.monotonic()
        await logout(router, account)
        ending = await next_not_data(client.receive, within=10)
        latency = time.monotonic() - started
        completed = await asyncio.wait_for(client.receive(), timeout=5)
    assert ending["payload"]["data"] is None
    error = ending["payload"]["errors"][0]
    assert error["message"] == "the session has been signed out"
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["extensions"]["reason"] == "revoked"
    assert completed["type"] == "complete"
    assert latency < 1.0


async def test_sse_subscription_ends_when_its_session_is_revoked(router) -> None:
    account = await sign_up(router)
    async with graphql_sse(router, NOTIFICATIONS, account.access_token) as sse:
        await until_live(router, account, lambda: sse.receive(60))
        started = time.monotonic()
        await logout(router, account)
        event, payload = await next_not_data(lambda: sse.receive(10), within=10)
        latency = time.monotonic() - started
    assert event == "next"
    assert payload["data"] is None
    assert payload["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert payload["errors"][0]["extensions"]["reason"] == "revoked"
    assert latency < 1.0


async def test_a_revoked_token_is_refused_everywhere_at_once(router) -> None:
    account = await sign_up(router)
    me = "query { me { id } }"
    assert (await router.post("/graphql", json={"query": me}, headers=account.headers)).json()[
        "data"
    ]["me"] == {"id": account.id}
    await logout(router, account)
    # A query (the router forwards the token; identity refuses it) and REST at each subgraph.
    graph = await router.post("/graphql", json={"query": me}, headers=account.headers)
    assert graph.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    for path in ("/api/v1/users/me", "/api/v1/documents", "/api/v1/notifications"):
        response = await router.get(path, headers=account.headers)
        assert response.status_code == 401, (path, response.text)


async def next_not_data(receive: Callable[[], Awaitable[Any]], within: float) -> Any:
    """The first message that is not a notification (warm-up ones may still be in flight)."""
    deadline = time.monotonic() + within
    while True:
        message = await asyncio.wait_for(receive(), max(0.1, deadline - time.monotonic()))
        payload = message[1] if isinstance(message, tuple) else message.get("payload")
        if not isinstance(payload, dict) or payload.get("errors") or not payload.get("data"):
            return message


def ws_url(stack) -> str:
    return stack.urls["router"].replace("http://", "ws://") + "/graphql"


# --- shared subgraph subscriptions --------------------------------------------------------

WITH_RECIPIENT = "subscription { notificationAdded { title recipient { email } } }"


async def second_session(router: httpx.AsyncClient, account: Account) -> str:
    """Another sign-in of the same user (another device): a token of its own."""
    response = await router.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def data_of(client: Any, within: float = 5) -> Any:
    message = await asyncio.wait_for(client.receive(), within)
    assert message["type"] == "next", message
    return message["payload"]["data"]["notificationAdded"]


async def drain(client: Any) -> None:
    """What warm-up notifications are still in flight for a client."""
    while True:
        try:
            await asyncio.wait_for(client.receive(), 0.5)
        except TimeoutError:
            return


@asynccontextmanager
async def two_tabs(
    stack, router, account: Account, query: str, second_query: str | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """Two clients with the account's one token and the same subscription (or the second
    its own), both live."""
    async with (
        graphql_ws(ws_url(stack), account.access_token) as first,
        graphql_ws(ws_url(stack), account.access_token) as second,
    ):
        await first.subscribe(query)
        await until_live(router, account, first.receive)
        await second.subscribe(second_query or query)
        await asyncio.sleep(0.5)  # the second subscription reaches the router
        await drain(first)
        yield first, second


async def test_an_event_carries_fields_of_other_subgraphs(stack, router) -> None:
    """The recipient's email comes from identity, fetched for each event with the
    subscriber's own token (a WebSocket client sends it in connection_init, not a header)."""
    account = await sign_up(router)
    async with graphql_ws(ws_url(stack), account.access_token) as client:
        await client.subscribe(WITH_RECIPIENT)
        await until_live(router, account, client.receive)
        await drain(client)
        await notify(router, account, "Addressed")
        assert await data_of(client) == {
            "title": "Addressed",
            "recipient": {"email": account.email},
        }


async def test_a_callers_identical_subscriptions_share_one_subgraph_subscription(
    stack, router
) -> None:
    """Three tabs with one token: one subscription at the subgraph, every tab gets each event,
    and the subgraph subscription lives as long as its last tab."""
    account = await sign_up(router)
    communication = stack.urls["communication"]
    baseline = await active_subscriptions(router, communication)
    async with two_tabs(stack, router, account, NOTIFICATIONS) as (first, second):
        async with graphql_ws(ws_url(stack), account.access_token) as third:
            await third.subscribe(NOTIFICATIONS)
            await asyncio.sleep(0.5)  # the third subscription reaches the router
            assert await active_subscriptions(router, communication) == baseline + 1
            for client in (second, third):
                await drain(client)
            await notify(router, account, "To every tab")
            for client in (first, second, third):
                assert await data_of(client) == {"title": "To every tab"}
        # One tab closed: the others still get each event, from the same subscription.
        await notify(router, account, "To the tabs left")
        assert await data_of(first) == {"title": "To the tabs left"}
        assert await data_of(second) == {"title": "To the tabs left"}
        assert await active_subscriptions(router, communication) == baseline + 1
    left = await settled(lambda: active_subscriptions(router, communication), baseline, 10)
    assert left == baseline


async def identity_fetches(router: httpx.AsyncClient) -> float:
    """Fetches the router's plans made to identity (before in-flight requests are merged)."""
    text = (await router.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "graphql_gateway_subgraph_execute_duration"
        for sample in family.samples
        if sample.name.endswith("_count") and sample.labels.get("subgraphName") == "identity"
    )


async def test_a_callers_identical_subscriptions_are_completed_once_per_event(
    stack, router
) -> None:
    """Tabs with the same operation share its results: each event's fields from another
    subgraph are fetched once for all of them, and every tab gets the whole event."""
    account = await sign_up(router)
    async with two_tabs(stack, router, account, WITH_RECIPIENT) as (first, second):
        await drain(second)
        for title in ("One", "Two"):
            before = await identity_fetches(router)
            await notify(router, account, title)
            expected = {"title": title, "recipient": {"email": account.email}}
            assert await data_of(first) == expected
            assert await data_of(second) == expected
            assert await identity_fetches(router) - before == 1


async def test_the_tab_that_opened_a_shared_subscription_may_leave_first(stack, router) -> None:
    """The tab whose subscription the others joined closes: they keep getting whole events."""
    account = await sign_up(router)
    communication = stack.urls["communication"]
    baseline = await active_subscriptions(router, communication)
    async with graphql_ws(ws_url(stack), account.access_token) as second:
        async with graphql_ws(ws_url(stack), account.access_token) as first:
            await first.subscribe(WITH_RECIPIENT)
            await until_live(router, account, first.receive)
            await second.subscribe(WITH_RECIPIENT)
            await asyncio.sleep(0.5)  # the second subscription reaches the router
        await drain(second)
        for title in ("After the first left", "And after that"):
            await notify(router, account, title)
            assert await data_of(second) == {
                "title": title,
                "recipient": {"email": account.email},
            }
        assert await active_subscriptions(router, communication) == baseline + 1
    left = await settled(lambda: active_subscriptions(router, communication), baseline, 10)
    assert left == baseline


async def test_operations_sharing_a_subgraph_subscription_are_each_completed(stack, router) -> None:
    """Two different operations of one caller with the same subgraph fetch share it at the
    subgraph; each is completed on its own, its other subgraphs' fields included."""
    account = await sign_up(router)
    communication = stack.urls["communication"]
    named = WITH_RECIPIENT.replace("subscription {", "subscription Inbox {")
    baseline = await active_subscriptions(router, communication)
    async with two_tabs(stack, router, account, WITH_RECIPIENT, named) as (first, second):
        assert await active_subscriptions(router, communication) == baseline + 1
        for title in ("One", "Two"):
            await notify(router, account, title)
            expected = {"title": title, "recipient": {"email": account.email}}
            assert await data_of(first) == expected
            assert await data_of(second) == expected


async def test_a_lost_subgraph_ends_every_tab_sharing_its_subscription(stack, router) -> None:
    """Communication goes away under two tabs sharing a subscription: each tab gets the error
    naming it, then the end, as a subscription of its own would."""
    account = await sign_up(router)
    async with two_tabs(stack, router, account, NOTIFICATIONS) as (first, second):
        stack.stop_service("communication")
        try:
            for client in (first, second):
                ending = await next_not_data(client.receive, within=30)
                error = ending["payload"]["errors"][0]
                assert error["extensions"] == {
                    "code": "SUBGRAPH_UNAVAILABLE",
                    "serviceName": "communication",
                }
                completed = await asyncio.wait_for(client.receive(), 5)
                assert completed["type"] == "complete"
        finally:
            stack.restart_service("communication")


async def test_subscriptions_of_two_sessions_are_not_shared(stack, router) -> None:
    """Two devices of one user: a subscription each at the subgraph, and signing one out ends
    only that device's subscription."""
    account = await sign_up(router)
    other_token = await second_session(router, account)
    communication = stack.urls["communication"]
    baseline = await active_subscriptions(router, communication)
    async with (
        graphql_ws(ws_url(stack), account.access_token) as laptop,
        graphql_ws(ws_url(stack), other_token) as phone,
    ):
        await laptop.subscribe(NOTIFICATIONS)
        await until_live(router, account, laptop.receive)
        await phone.subscribe(NOTIFICATIONS)
        await until_live(router, account, phone.receive)
        assert await active_subscriptions(router, communication) == baseline + 2
        await logout(router, account)  # the laptop's session
        ending = await next_not_data(laptop.receive, within=10)
        assert ending["payload"]["errors"][0]["extensions"]["reason"] == "revoked"
        await drain(phone)
        await notify(router, Account(account.id, "", "", other_token, ""), "Still here")
        assert await data_of(phone) == {"title": "Still here"}


# --- no leak ---------------------------------------------------------------------------

CYCLES = 100


def established(port: int) -> int:
    """TCP connections to `port` (either end) in state ESTABLISHED, from /proc/net/tcp*."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
            if state == "01" and port in ports:
                count += 1
    return count


async def active_subscriptions(client: httpx.AsyncClient, url: str) -> float:
    text = (await client.get(f"{url}/metrics")).text
    match = re.search(
        r'^hub_graphql_subscriptions_active\{service="communication"\} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


async def settled(check: Callable[[], Awaitable[float]], at_most: float, within: float) -> float:
    """`check()` once it is at most `at_most`, or its last value after `within` seconds."""
    value = await check()
    for _ in range(int(within / 0.25)):
        if value <= at_most:
            break
        await asyncio.sleep(0.25)
        value = await check()
    return value


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_no_subscription_outlives_its_client(stack, router, account, transport) -> None:
    """100 clients subscribe and leave; the subgraph and the router are left as they were."""
    communication = stack.urls["communication"]
    router_port = int(stack.urls["router"].rsplit(":", 1)[1])
    subgraph_port = int(communication.rsplit(":", 1)[1])
    baseline = await active_subscriptions(router, communication)

    async def sockets() -> float:
        return established(router_port) + established(subgraph_port)

    sockets_before = await sockets()

    async def reached_the_subgraph() -> bool:
        for _ in range(500):
            if await active_subscriptions(router, communication) > baseline:
                return True
            await asyncio.sleep(0.02)
        return False

    reached = 0
    started = time.monotonic()
    for _ in range(CYCLES):
        if transport == "ws":
            async with graphql_ws(ws_url(stack), account.access_token) as client:
                await client.subscribe(NOTIFICATIONS)
                reached += await reached_the_subgraph()
        else:
            async with (
                httpx.AsyncClient(base_url=stack.urls["router"], timeout=30) as fresh,
                graphql_sse(fresh, NOTIFICATIONS, account.access_token),
            ):
                reached += await reached_the_subgraph()
    elapsed = time.monotonic() - started
    assert reached == CYCLES  # every subscription was open at the subgraph
    left = await settled(lambda: active_subscriptions(router, communication), baseline, 15)
    # The router closes a subgraph WebSocket 3 s after its last subscription.
    sockets_after = await settled(sockets, sockets_before, 15)
    numsub = await revocation_channel_subscribers(stack)
    print(
        f"{transport}: {CYCLES} cycles in {elapsed:.1f}s; subscriptions at the subgraph "
        f"{baseline:g} -> {left:g}; router sockets {sockets_before:g} -> {sockets_after:g}; "
        f"revocation channel subscribers {numsub}"
    )
    assert left == baseline
    assert sockets_after <= sockets_before
    # One pub/sub subscriber per service process on the revocation channel (each keeps the
    # registry's copy: the stack's four subgraphs and this test process's four apps),
    # however many subscriptions came and went.
    assert 1 <= numsub <= 8


async def revocation_channel_subscribers(stack) -> int:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(stack.env["HUB_REDIS_URL"])
    channel = SESSION_REVOKED_CHANNEL.format(stream=stack.env["HUB_EVENTS_STREAM"])
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


# --- the price of revocation -------------------------------------------------------------


async def test_the_revocation_check_costs_at_most_one_redis_lookup_per_request(
    apps, router
) -> None:
    """Measured: verifying a token with and without the revocation check (one EXISTS until
    the process's copy of the registry is complete, none after: test_verification_cost.py)."""
    import copy

    account = await sign_up(router)
    content = apps["content"]
    revocations = SessionRevocations.for_deployment(content.state.settings.hub)
    without_check = content.state.verifier
    with_check = copy.copy(without_check)
    with_check.revocations = revocations
    await with_check.verify(account.access_token)  # keys fetched, connection pooled

    async def per_call(verifier, n: int = 500) -> float:
        started = time.perf_counter()
        for _ in range(n):
            await verifier.verify(account.access_token)
        return (time.perf_counter() - started) / n * 1000

    async def lookup(n: int = 500) -> float:
        sid = jwt.decode(account.access_token, options={"verify_signature": False})["sid"]
        started = time.perf_counter()
        for _ in range(n):
            assert not await revocations.is_revoked(sid)
        return (time.perf_counter() - started) / n * 1000

    plain, checked, alone = (
        await per_call(without_check),
        await per_call(with_check),
        await lookup(),
    )
    print(
        f"token verification {plain:.3f} ms, with the revocation lookup {checked:.3f} ms; "
        f"the lookup alone {alone:.3f} ms"
    )
    await revocations.close()
    assert alone < 5.0  # one loopback round trip (under load), not a scan
