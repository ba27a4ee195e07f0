"""The federated graph through the real router: one query, four subgraphs, live events."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
from integration.conftest import execute, graphql_ws


async def seed(router) -> dict[str, str]:
    """A user who owns a document under review and has a notification, made via :router."""
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    user = await execute(
        router,
        "mutation($i: RegisterInput!) { register(input: $i) { id } }",
        {
            "i": {
                "email": email,
                "password": "a sturdy passphrase 42",
                "displayName": "Buyer",
            }
        },
    )
    user_id = user["register"]["id"]
    login = await execute(
        router,
        """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
            ... on TokenPair { accessToken } } }""",
        {"e": email, "p": "a sturdy passphrase 42"},
    )
    token = login["login"]["accessToken"]
    document = await execute(
        router,
        "mutation($i: CreateDocumentInput!) { createDocument(input: $i) {"
        " ... on Document { id } } }",
        {"i": {"title": "Tender RC"}},
        {"authorization": f"Bearer {token}"},
    )
    document_id = document["createDocument"]["id"]
    await execute(
        router,
        "mutation($w: StartWorkflowInput!, $n: SendNotificationInput!) {"
        " startWorkflow(input: $w) { id } sendNotification(input: $n) { id } }",
        {
            "w": {"definitionKey": "tender-review", "documentId": document_id},
            "n": {"recipientId": user_id, "title": "Tender RC awaits review"},
        },
        {"authorization": f"Bearer {token}"},  # a user may notify themselves
    )
    return {
        "user": user_id,
        "document": document_id,
        "token": token,
        "email": email,
        "password": "a sturdy passphrase 42",
    }


async def test_one_query_crosses_all_four_subgraphs(router) -> None:
    ids = await seed(router)
    data = await execute(
        router,
        """query($id: ID!) { document(id: $id) {
            title
            owner { id displayName documents { nodes { title } }
                    notifications { nodes { title } } }
            workflows { definitionKey state document { title } } } }""",
        {"id": ids["document"]},
        {"authorization": f"Bearer {ids['token']}"},
    )
    document = data["document"]
    assert document["title"] == "Tender RC"
    assert document["owner"]["id"] == ids["user"]
    assert document["owner"]["displayName"] == "Buyer"  # identity
    assert document["owner"]["documents"]["nodes"] == [{"title": "Tender RC"}]  # content
    # communication (after the verification email identity asked for at registration)
    assert {"title": "Tender RC awaits review"} in document["owner"]["notifications"]["nodes"]
    assert document["workflows"] == [  # workflow, and back to content
        {"definitionKey": "tender-review", "state": "started", "document": {"title": "Tender RC"}}
    ]


async def test_the_worker_delivers_queued_notifications(router) -> None:
    ids = await seed(router)
    query = """query($id: ID!) { user(id: $id) { notifications {
        nodes { title status deliveredAt } } } }"""
    signed_in = {"authorization": f"Bearer {ids['token']}"}
    for _ in range(100):
        data = await execute(router, query, {"id": ids["user"]}, signed_in)
        # The user also gets identity's "verify your email" notification; find ours.
        (notification,) = [
            n
            for n in data["user"]["notifications"]["nodes"]
            if n["title"] == "Tender RC awaits review"
        ]
        if notification["status"] == "DELIVERED":
            break
        await asyncio.sleep(0.1)
    assert notification["status"] == "DELIVERED" and notification["deliveredAt"]


async def test_a_subscription_event_reaches_the_client_through_the_router(stack, router) -> None:
    ids = await seed(router)
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, ids["token"]) as client:
        subscription = await client.subscribe(
            """subscription($id: ID!) { notificationAdded(recipientId: $id) {
                title status recipient { id displayName } } }""",
            {"id": ids["user"]},
        )
        # The subscription is live once the subgraph listens; retry the send until it lands.
        message = None
        for attempt in range(20):
            await execute(
                router,
                "mutation($n: SendNotificationInput!) { sendNotification(input: $n) { id } }",
                {"n": {"recipientId": ids["user"], "title": f"Bid received #{attempt}"}},
                {"authorization": f"Bearer {ids['token']}"},
            )
            try:
                message = await asyncio.wait_for(client.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
    assert message is not None, "no event arrived"
    assert message["id"] == subscription and message["type"] == "next"
    event = message["payload"]["data"]["notificationAdded"]
    assert event["title"].startswith("Bid received")
    assert event["status"] == "DELIVERED"
    # A field of another subgraph, resolved by the router for the event.
    assert event["recipient"] == {"id": ids["user"], "displayName": "Buyer"}


async def test_subgraph_errors_reach_the_client_with_their_code(router) -> None:
    response = await router.post(
        "/graphql",
        json={"query": '{ document(id: "not-an-id") { title } }'},
    )
    body = response.json()
    assert body["data"] == {"document": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_subgraph_keeps_an_idle_connection_longer_than_the_router_does(stack) -> None:
    """Node's HTTP agents (the router's) drop a connection idle for 5 s; a subgraph keeps
    one longer, so the router never sends a request on a connection the subgraph is closing
    (that race cost one request in 70,000 of the bench's soak: "socket hang up")."""

    async def used_again_after_idling(base_url: str) -> None:
        url = httpx.URL(base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        request = f"GET /health HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode()
        try:
            for attempt in range(2):
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200"), (base_url, attempt, head)
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                assert length is not None, head
                await reader.readexactly(int(length.group(1)))
                if attempt == 0:
                    await asyncio.sleep(5.5)  # idle past the agents' 5 s: still open
        finally:
            writer.close()

    subgraphs = ("identity", "content", "communication", "workflow")
    await asyncio.gather(*(used_again_after_idling(stack.urls[name]) for name in subgraphs))
