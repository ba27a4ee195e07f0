"""Communication through the real stack: router, subgraphs, the Celery worker, the event
consumer, a real SMTP server (aiosmtpd) and a real webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from communication.broker import broker_unreachable
from conftest import PASSWORD, sign_up, unique_email
from integration.conftest import execute, graphql_ws
from sqlalchemy import select

from subgraphs.common import events
from subgraphs.common.settings import HubSettings
from subgraphs.communication import tasks, webhooks
from subgraphs.communication.models import Delivery, DeliveryAttempt, Notification
from subgraphs.communication.service import preferences

SEND = "mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id } }"
DELIVERIES = """query($id: ID!) { notification(id: $id) { status deliveries {
    id channel status attempts attemptHistory { status reason } } } }"""


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 30) -> Any:
    """The first truthy answer of `check`, asked every 0.2 s for up to `within` seconds."""
    for _ in range(int(within / 0.2)):
        if value := await check():
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within} s")


async def registered(router, mailbox) -> dict[str, str]:
    """A user registered through the router, once identity's verification email arrived
    (outbox -> stream -> consumer -> worker -> SMTP), which also gives communication the
    address."""
    email = unique_email("comm")
    created = await router.post(
        "/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "display_name": "Grace"},
    )
    assert created.status_code == 201, created.text
    login = await router.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    message = await eventually(lambda: _first(mailbox.to(email)))
    return {
        "id": created.json()["id"],
        "email": email,
        "token": login.json()["access_token"],
        "verification": message.get_content(),
    }


async def _first(items: list[Any]) -> Any:
    return items[0] if items else None


def auth(user: dict[str, str]) -> dict[str, str]:
    return {"authorization": f"Bearer {user['token']}"}


async def test_identitys_verification_email_arrives_and_its_link_verifies(router, mailbox) -> None:
    user = await registered(router, mailbox)
    assert "Hello Grace" in user["verification"]
    token = user["verification"].split("verify-email?token=")[1].split()[0]
    verified = await router.post("/api/v1/auth/email/verify", json={"token": token})
    assert verified.status_code in (200, 204), verified.text


async def test_an_email_and_a_signed_webhook_arrive_through_the_worker(
    router,
    mailbox,
    receiver,
) -> None:
    user = await registered(router, mailbox)
    hook = f"stack-{uuid.uuid4().hex[:6]}"
    webhook = await execute(
        router,
        "mutation($u: String) { setWebhook(url: $u) { secret } }",
        {"u": receiver.endpoint(hook)},
        auth(user),
    )
    sent = await execute(
        router,
        SEND,
        {
            "i": {
                "recipientId": user["id"],
                "template": "document.shared",
                "variables": {"document_title": "Bid 7", "permission": "comment on"},
                "category": "documents",
            }
        },
        auth(user),
    )
    email = await eventually(
        lambda: _first([m for m in mailbox.to(user["email"]) if "Bid 7" in m["Subject"]])
    )
    assert email["Subject"] == "“Bid 7” was shared with you"
    assert "You can comment on it" in email.get_content()
    (call,) = await eventually(lambda: _first([receiver.received.get(hook)]))
    webhooks.verify(webhook["setWebhook"]["secret"], call.headers, call.body)
    assert call.json["title"] == "“Bid 7” was shared with you"

    async def all_sent() -> Any:
        data = await execute(router, DELIVERIES, {"id": sent["sendNotification"]["id"]}, auth(user))
        states = {d["channel"]: d["status"] for d in data["notification"]["deliveries"]}
        return data if set(states.values()) == {"SENT"} else None

    data = await eventually(all_sent)
    assert data["notification"]["status"] == "DELIVERED"
    assert {d["channel"] for d in data["notification"]["deliveries"]} == {
        "IN_APP",
        "EMAIL",
        "WEBHOOK",
    }


async def test_a_failing_receiver_is_retried_then_dead_lettered(
    apps,
    clients,
    router,
    receiver,
) -> None:
    user = await sign_up(clients["identity"])
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    hook = f"failing-{uuid.uuid4().hex[:6]}"
    receiver.status[hook] = 500
    await execute(
        router,
        "mutation($u: String) { setWebhook(url: $u) { url } }",
        {"u": receiver.endpoint(hook)},
        user.headers,
    )
    sent = await execute(
        router, SEND, {"i": {"recipientId": user.id, "title": "Ping"}}, user.headers
    )

    async def dead() -> Any:
        data = await execute(
            router,
            "{ deadLetters(first: 100) { nodes { notificationId attempts lastError } } }",
            {},
            admin.headers,
        )
        found = [
            d
            for d in data["deadLetters"]["nodes"]
            if d["notificationId"] == sent["sendNotification"]["id"]
        ]
        return found[0] if found else None

    letter = await eventually(dead, within=45)
    attempts = int(os.environ["HUB_COMMUNICATION_MAX_ATTEMPTS"])
    assert letter == {
        "notificationId": sent["sendNotification"]["id"],
        "attempts": attempts,
        "lastError": "webhook answered HTTP 500",
    }
    assert len(receiver.received[hook]) == attempts
    data = await execute(router, DELIVERIES, {"id": sent["sendNotification"]["id"]}, user.headers)
    (webhook,) = [d for d in data["notification"]["deliveries"] if d["channel"] == "WEBHOOK"]
    assert [a["status"] for a in webhook["attemptHistory"]] == ["failed"] * attempts


async def test_a_worker_killed_mid_delivery_delivers_once_after_restart(
    stack,
    clients,
    router,
    receiver,
) -> None:
    user = await sign_up(clients["identity"])
    hook = f"slow-{uuid.uuid4().hex[:6]}"
    receiver.delay[hook] = 30  # the first call hangs: the worker is inside the send
    await execute(
        router,
        "mutation($u: String) { setWebhook(url: $u) { url } }",
        {"u": receiver.endpoint(hook)},
        user.headers,
    )
    receiver.arrived.clear()
    sent = await execute(
        router, SEND, {"i": {"recipientId": user.id, "title": "Once"}}, user.headers
    )
    await eventually(lambda: _first([receiver.received.get(hook)]))

    worker = stack.supervisor.process("worker").popen
    os.killpg(os.getpgid(worker.pid), signal.SIGKILL)  # no warm shutdown, no ack
    # From this thread: the stack's processes die with the thread that started them.
    stack.stop_service("worker")
    stack.restart_service("worker")

    async def sent_once() -> Any:
        data = await execute(
            router, DELIVERIES, {"id": sent["sendNotification"]["id"]}, user.headers
        )
        (webhook,) = [d for d in data["notification"]["deliveries"] if d["channel"] == "WEBHOOK"]
        return webhook if webhook["status"] == "SENT" else None

    webhook = await eventually(sent_once, within=60)
    await asyncio.sleep(3)  # nothing more arrives
    calls = receiver.received[hook]
    # The resend after the crash is the same delivery (same webhook-id), recorded sent once.
    assert {c.headers["webhook-id"] for c in calls} == {webhook["id"]}
    assert len(calls) == 2
    assert [a["status"] for a in webhook["attemptHistory"]] == ["sent"]


async def test_a_subscriber_through_the_router_gets_notification_added_within_a_second(
    stack, clients, router
) -> None:
    account = await sign_up(clients["identity"])
    user = {"id": account.id, "token": account.access_token}
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, user["token"]) as client:
        await client.subscribe("subscription { notificationAdded { title recipient { id } } }")
        for attempt in range(20):  # live once the subgraph listens: retry until one lands
            await execute(
                router,
                SEND,
                {"i": {"recipientId": user["id"], "title": f"Warm #{attempt}"}},
                auth(user),
            )
            try:
                await asyncio.wait_for(client.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
        started = time.monotonic()
        await execute(router, SEND, {"i": {"recipientId": user["id"], "title": "Live"}}, auth(user))
        message = await asyncio.wait_for(client.receive(), timeout=1.0)
        latency = time.monotonic() - started
    added = message["payload"]["data"]["notificationAdded"]
    assert added == {"title": "Live", "recipient": {"id": user["id"]}}
    assert latency < 1.0


async def test_each_of_a_users_devices_gets_the_notification_in_the_shape_it_asked(
    stack, clients, router
) -> None:
    """Two devices (two sessions) with the same subscription share one execution of each
    event in communication; a third subscription with another selection gets its own."""
    account = await sign_up(clients["identity"])
    again = await clients["identity"].post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert again.status_code == 200, again.text
    phone, laptop = account.access_token, again.json()["access_token"]
    user = {"id": account.id, "token": phone}
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    same = "subscription { notificationAdded { title recipient { id } } }"
    other = "subscription { notificationAdded { id title read } }"
    async with (
        graphql_ws(ws_url, phone) as on_phone,
        graphql_ws(ws_url, laptop) as on_laptop,
        graphql_ws(ws_url, phone) as in_a_tab,
    ):
        await on_phone.subscribe(same)
        await on_laptop.subscribe(same)
        await in_a_tab.subscribe(other)
        devices = (on_phone, on_laptop, in_a_tab)

        async def titled(device: Any, title: str) -> dict[str, Any]:
            while True:  # past the warm-ups' frames still in flight
                frame = await asyncio.wait_for(device.receive(), timeout=1.5)
                assert frame["type"] == "next" and "errors" not in frame["payload"], frame
                added: dict[str, Any] = frame["payload"]["data"]["notificationAdded"]
                if added["title"] == title:
                    return added

        async def received(title: str) -> list[dict[str, Any]]:
            return [await titled(device, title) for device in devices]

        for attempt in range(20):  # live once the subgraph listens to all three
            warm = {"recipientId": user["id"], "title": f"Warm #{attempt}"}
            await execute(router, SEND, {"i": warm}, auth(user))
            try:
                await received(warm["title"])
                break
            except TimeoutError:
                continue
        sent = await execute(
            router, SEND, {"i": {"recipientId": user["id"], "title": "To every device"}}, auth(user)
        )
        phone_saw, laptop_saw, tab_saw = await received("To every device")
    assert phone_saw == laptop_saw == {"title": "To every device", "recipient": {"id": user["id"]}}
    assert tab_saw == {
        "id": sent["sendNotification"]["id"],
        "title": "To every device",
        "read": False,
    }


async def test_someone_elses_notifications_cannot_be_subscribed_to(stack, clients) -> None:
    ada, bob = await sign_up(clients["identity"]), await sign_up(clients["identity"])
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, bob.access_token) as client:
        await client.subscribe(
            "subscription($r: ID!) { notificationAdded(recipientId: $r) { title } }", {"r": ada.id}
        )
        message = await asyncio.wait_for(client.receive(), timeout=10)
    assert message["type"] in ("error", "next")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


async def test_message_added_reaches_the_other_member_through_the_router(
    stack, clients, router
) -> None:
    ada, bob = await sign_up(clients["identity"]), await sign_up(clients["identity"])
    started = await execute(
        router,
        "mutation($i: StartConversationInput!) { startConversation(input: $i) { id } }",
        {"i": {"memberIds": [bob.id]}},
        ada.headers,
    )
    conversation = started["startConversation"]["id"]
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with graphql_ws(ws_url, bob.access_token) as client:
        await client.subscribe("subscription { messageAdded { body sender { id } } }")
        message = None
        for attempt in range(20):
            await execute(
                router,
                "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
                {"i": {"conversationId": conversation, "body": f"hello #{attempt}"}},
                ada.headers,
            )
            try:
                message = await asyncio.wait_for(client.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
    assert message is not None
    added = message["payload"]["data"]["messageAdded"]
    assert added["body"].startswith("hello") and added["sender"] == {"id": ada.id}


async def test_stored_emails_keep_no_one_time_token_once_sent(apps, router, mailbox) -> None:
    user = await registered(router, mailbox)  # the verification email arrived, token and all
    token = user["verification"].split("verify-email?token=")[1].split()[0]
    assert len(token) >= 20

    async def stored_texts() -> list[str]:
        async with apps["communication"].state.sessions() as session:
            mine = uuid.UUID(user["id"])
            deliveries = (
                await session.scalars(select(Delivery).where(Delivery.recipient_id == mine))
            ).all()
            notes = (
                await session.scalars(select(Notification).where(Notification.recipient_id == mine))
            ).all()
            attempts = (
                await session.scalars(
                    select(DeliveryAttempt).where(
                        DeliveryAttempt.delivery_id.in_([d.id for d in deliveries])
                    )
                )
            ).all()
        if any(d.status != "sent" for d in deliveries):
            return []
        return [
            *(f"{d.subject} {d.body} {d.redacted_body} {d.last_error}" for d in deliveries),
            *(f"{n.title} {n.body} {n.idempotency_key}" for n in notes),
            *(f"{a.reason}" for a in attempts),
        ]

    texts = await eventually(stored_texts)
    assert not any(token in text for text in texts)
    assert any("verify-email?token=[redacted]" in text for text in texts)


async def test_a_delivery_stored_while_the_broker_was_down_is_swept_and_sent_once(
    stack, apps, clients, receiver
) -> None:
    """The API stores the notification but cannot queue its task; the stack's event consumer
    sweeps it back into the queue and the real worker delivers it, once."""
    user = await sign_up(clients["identity"])
    hook = f"swept-{uuid.uuid4().hex[:6]}"
    communication = clients["communication"]  # in process: its Celery client is ours to break
    webhook = await communication.put(
        "/api/v1/notifications/webhook", json={"url": receiver.endpoint(hook)}, headers=user.headers
    )
    assert webhook.status_code == 200, webhook.text
    with broker_unreachable():
        sent = await communication.post(
            "/api/v1/notifications",
            json={"recipient_id": user.id, "title": "Swept", "channels": ["webhook"]},
            headers=user.headers,
        )
    assert sent.status_code == 201, sent.text
    async with apps["communication"].state.sessions() as session:
        (stranded,) = (
            await session.scalars(
                select(Delivery).where(Delivery.notification_id == uuid.UUID(sent.json()["id"]))
            )
        ).all()
    # Stored, never handed to the broker (the sweep waits 3 s before taking it).
    assert stranded.status == "queued" and stranded.enqueued_at is None

    calls = await eventually(lambda: _first([receiver.received.get(hook)]), within=30)
    await asyncio.sleep(4)  # more sweeps run (every second): nothing is sent again
    calls = receiver.received[hook]
    assert len(calls) == 1
    notification = await communication.get(
        f"/api/v1/notifications/{sent.json()['id']}", headers=user.headers
    )
    assert notification.json()["status"] == "delivered"
    async with apps["communication"].state.sessions() as session:
        swept = await session.get(Delivery, stranded.id)
        attempts = (
            await session.scalars(
                select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == stranded.id)
            )
        ).all()
    assert swept.status == "sent" and swept.enqueued_at is not None
    assert [a.status for a in attempts] == ["sent"]
    assert calls[0].headers["webhook-id"] == str(stranded.id)


async def test_an_event_published_while_the_consumer_process_is_down_is_notified_once_back(
    stack, clients, router
) -> None:
    user = await sign_up(clients["identity"])
    started = time.monotonic()
    stack.stop_service("events")  # SIGTERM to the stack's consumer process
    stopped_in = time.monotonic() - started
    consumer = stack.supervisor.process("events").popen
    # It stopped between two entries, on its own within the grace period (a SIGKILL after
    # it would read -9), and was reaped: restart_service cannot find it "still running".
    assert consumer.returncode == 0, (consumer.returncode, stopped_in)
    try:
        client = events.connect(HubSettings())
        event = events.Event(
            id=str(uuid.uuid4()),
            type="content.document_shared",
            source="content",
            occurred_at="2026-11-20T10:00:00+00:00",
            data={
                "document_id": str(uuid.uuid4()),
                "document_title": "Offline spec",
                "grantee_id": user.id,
                "permission": "read",
            },
        )
        await events.publish(client, os.environ["HUB_EVENTS_STREAM"], event)
        await events.publish(client, os.environ["HUB_EVENTS_STREAM"], event)  # a duplicate
        await client.aclose()
        await asyncio.sleep(1)
        assert not await _documents_notified(router, user)
    finally:
        stack.restart_service("events")

    nodes = await eventually(lambda: _documents_notified(router, user))
    await asyncio.sleep(1)
    nodes = await _documents_notified(router, user)
    assert nodes == [
        {
            "title": "“Offline spec” was shared with you",
            "category": "documents",
            "subjectType": "Document",
        }
    ]


async def _documents_notified(router, user) -> list[dict[str, Any]]:
    data = await execute(
        router, "{ notifications { nodes { title category subjectType } } }", {}, user.headers
    )
    return [n for n in data["notifications"]["nodes"] if n["category"] == "documents"]


async def test_rest_for_legacy_clients_through_the_router(clients, router) -> None:
    ada, bob = await sign_up(clients["identity"]), await sign_up(clients["identity"])
    created = await router.post(
        "/api/v1/notifications",
        json={"recipient_id": ada.id, "title": "Via :8000", "category": "rest"},
        headers=ada.headers,
    )
    assert created.status_code == 201, created.text
    # (identity's verification email, once the stack's consumer has it, is one too)
    listed = await router.get("/api/v1/notifications?limit=5", headers=ada.headers)
    assert "Via :8000" in [n["title"] for n in listed.json()["items"]]
    count = await router.get("/api/v1/notifications/unread-count", headers=ada.headers)
    assert count.json()["unread_count"] >= 1
    read = await router.post(
        f"/api/v1/notifications/{created.json()['id']}/read", headers=ada.headers
    )
    assert read.status_code == 200 and read.json()["read_at"] is not None
    marked = await router.patch("/api/v1/notifications", json={"read": True}, headers=ada.headers)
    assert marked.status_code == 200, marked.text
    count = await router.get("/api/v1/notifications/unread-count", headers=ada.headers)
    assert count.json() == {"unread_count": 0}
    preference = await router.put(
        "/api/v1/notifications/preferences",
        json={"category": "rest", "channel": "email", "digest_seconds": 3600},
        headers=ada.headers,
    )
    assert preference.status_code == 200, preference.text
    preferences = await router.get("/api/v1/notifications/preferences", headers=ada.headers)
    assert preferences.json() == [
        {"category": "rest", "channel": "email", "enabled": True, "digest_seconds": 3600}
    ]

    group = await router.post(
        "/api/v1/conversations",
        json={"member_ids": [bob.id], "title": "Tender 12"},
        headers=ada.headers,
    )
    assert group.status_code == 201, group.text
    conversation = group.json()["id"]
    posted = await router.post(
        f"/api/v1/conversations/{conversation}/messages",
        json={"body": "Offers due Friday"},
        headers=ada.headers,
    )
    assert posted.status_code == 201, posted.text
    messages = await router.get(
        f"/api/v1/conversations/{conversation}/messages", headers=bob.headers
    )
    assert [m["body"] for m in messages.json()["items"]] == ["Offers due Friday"]
    seen = await router.post(f"/api/v1/conversations/{conversation}/read", headers=bob.headers)
    assert seen.status_code == 200
    members = await router.get(f"/api/v1/conversations/{conversation}/members", headers=bob.headers)
    assert {m["user_id"]: m["role"] for m in members.json()} == {ada.id: "admin", bob.id: "member"}
    left = await router.delete(
        f"/api/v1/conversations/{conversation}/members/{bob.id}", headers=bob.headers
    )
    assert left.status_code == 204
    gone = await router.get(f"/api/v1/conversations/{conversation}", headers=bob.headers)
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["code"] == "NOT_FOUND"
    bad = await router.post(
        "/api/v1/notifications", json={"recipient_id": "nope"}, headers=ada.headers
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    anonymous = await router.get("/api/v1/conversations")
    assert anonymous.status_code == 401


async def test_a_digest_is_made_and_sent_by_the_worker(stack, apps, clients, mailbox) -> None:
    """The digest task (queued `digestSeconds` after the first notification of the window)
    run by the real worker: one email for the category's pending notifications."""
    ada = await sign_up(clients["identity"])
    communication = clients["communication"]
    async with apps["communication"].state.sessions() as session:
        await preferences.remember_contact(session, uuid.UUID(ada.id), email=ada.email)
        await session.commit()
    await communication.put(
        "/api/v1/notifications/preferences",
        json={"category": "bids", "channel": "email", "digest_seconds": 3600},
        headers=ada.headers,
    )
    for title in ("Bid from ACME", "Bid from Globex"):
        sent = await communication.post(
            "/api/v1/notifications",
            json={"recipient_id": ada.id, "title": title, "category": "bids"},
            headers=ada.headers,
        )
        assert sent.status_code == 201, sent.text

    def bids() -> list[Any]:  # (identity's verification email goes to the address too)
        return [m for m in mailbox.to(ada.email) if "bid" in m["Subject"].lower()]

    await asyncio.sleep(1)
    assert bids() == []  # batched, not sent one by one
    # What the scheduled task does when its hour is up, on the stack's worker now.
    await asyncio.to_thread(tasks.send_digest.delay, ada.id, "bids")
    email = await eventually(lambda: _first(bids()))
    assert email["Subject"] == "2 new bids notifications"
    text = email.get_content()
    assert "Bid from ACME" in text and "Bid from Globex" in text
    await asyncio.sleep(1)
    assert len(bids()) == 1


async def test_a_removed_member_stops_receiving_message_added_through_the_router(
    stack, clients, router
) -> None:
    ada, bob, eve = [await sign_up(clients["identity"]) for _ in range(3)]
    started = await execute(
        router,
        "mutation($i: StartConversationInput!) { startConversation(input: $i) { id } }",
        {"i": {"memberIds": [bob.id, eve.id], "title": "Lot 3"}},
        ada.headers,
    )
    conversation = started["startConversation"]["id"]
    post = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"
    ws_url = stack.urls["router"].replace("http://", "ws://") + "/graphql"
    async with (
        graphql_ws(ws_url, bob.access_token) as bob_ws,
        graphql_ws(ws_url, eve.access_token) as eve_ws,
    ):
        for client in (bob_ws, eve_ws):
            await client.subscribe("subscription { messageAdded { body } }")
        for attempt in range(20):  # live once the subgraph listens: retry until both hear
            body = f"warm #{attempt}"
            await execute(
                router, post, {"i": {"conversationId": conversation, "body": body}}, ada.headers
            )
            try:
                await asyncio.wait_for(bob_ws.receive(), timeout=1.5)
                await asyncio.wait_for(eve_ws.receive(), timeout=1.5)
                break
            except TimeoutError:
                continue
        for client in (bob_ws, eve_ws):  # whatever warm-up messages are still on their way
            with contextlib.suppress(TimeoutError):
                while True:
                    await asyncio.wait_for(client.receive(), timeout=1.0)

        await execute(
            router,
            "mutation($id: ID!, $m: ID!) { removeConversationMember(id: $id, memberId: $m) }",
            {"id": conversation, "m": eve.id},
            ada.headers,
        )
        await execute(
            router, post, {"i": {"conversationId": conversation, "body": "after"}}, ada.headers
        )
        heard = await asyncio.wait_for(bob_ws.receive(), timeout=5)
        assert heard["payload"]["data"]["messageAdded"] == {"body": "after"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(eve_ws.receive(), timeout=2)
