"""Webhooks reach public addresses only (SSRF): checked when set and again before each POST."""

from __future__ import annotations

import uuid

import pytest
from conftest import graphql, sign_up
from sqlalchemy import select, update

from subgraphs.communication import destinations
from subgraphs.communication.models import Contact, Delivery
from subgraphs.communication.service import delivery

SET = "mutation($u: String) { setWebhook(url: $u) { url secret } }"
REFUSED = [
    "http://localhost:8003/hook",  # loopback by name (the allow-list names 127.0.0.1 only)
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # loopback inside an IPv4-mapped IPv6 address
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://100.64.0.1/hook",  # shared address space
    "http://0.0.0.0:8000/hook",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "http://no-such-host.invalid/hook",
    "not a url",
    "http://[unclosed/hook",
]


async def test_a_webhook_to_a_non_public_address_or_scheme_is_refused(clients) -> None:
    ada = await sign_up(clients["identity"])
    for url in REFUSED:
        answer = await graphql(clients["communication"], SET, {"u": url}, ada.headers)
        assert answer["data"] is None, url
        assert answer["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "url"}
        rest = await clients["communication"].put(
            "/api/v1/notifications/webhook", json={"url": url}, headers=ada.headers
        )
        assert rest.status_code == 422, (url, rest.text)
        assert rest.headers["content-type"] == "application/problem+json"
        assert rest.json()["code"] == "BAD_USER_INPUT"
    stored = await clients["communication"].get(
        "/api/v1/notifications/webhook", headers=ada.headers
    )
    assert stored.json()["url"] is None


async def test_allow_listed_hosts_and_the_private_switch_are_accepted(apps, clients, receiver):
    ada = await sign_up(clients["identity"])
    # The run allow-lists 127.0.0.1 (HUB_COMMUNICATION_WEBHOOK_ALLOWED_HOSTS), where the
    # local receiver listens.
    answer = await graphql(
        clients["communication"], SET, {"u": receiver.endpoint("ok")}, ada.headers
    )
    assert answer["data"]["setWebhook"]["secret"].startswith("whsec_")
    settings = apps["communication"].state.settings
    with pytest.raises(destinations.DestinationRefused, match="not a public address"):
        await destinations.resolve("http://localhost:1/hook", settings)
    named = settings.model_copy(update={"webhook_allowed_hosts": "127.0.0.1, LocalHost"})
    target = await destinations.resolve("http://localhost:1/hook?x=1", named)
    assert target.url in ("http://127.0.0.1:1/hook?x=1", "http://[::1]:1/hook?x=1")
    assert target.host_header == "localhost:1" and target.sni_hostname is None
    private = settings.model_copy(update={"webhook_allow_private": True})
    metadata = await destinations.resolve("https://169.254.169.254/latest", private)
    assert metadata.url == "https://169.254.169.254:443/latest"
    with pytest.raises(destinations.DestinationRefused, match="http"):
        await destinations.resolve("file:///etc/passwd", private)  # schemes: never


async def test_a_webhook_that_resolves_elsewhere_at_delivery_is_not_called(
    apps, clients, receiver
) -> None:
    """DNS rebinding: the host passed when set, and now names a loopback address."""
    ada = await sign_up(clients["identity"])
    hook = f"rebound-{uuid.uuid4().hex[:6]}"
    await graphql(clients["communication"], SET, {"u": receiver.endpoint(hook)}, ada.headers)
    state = apps["communication"].state
    rebound = receiver.endpoint(hook).replace("127.0.0.1", "localhost")
    async with state.sessions() as session:  # what a changed DNS answer amounts to
        await session.execute(
            update(Contact).where(Contact.user_id == uuid.UUID(ada.id)).values(webhook_url=rebound)
        )
        await session.commit()
    sent = await graphql(
        clients["communication"],
        "mutation($i: SendNotificationInput!) { sendNotification(input: $i) { id } }",
        {"i": {"recipientId": ada.id, "title": "Rebound", "channels": ["WEBHOOK"]}},
        ada.headers,
    )
    async with state.sessions() as session:
        webhook = await session.scalar(
            select(Delivery).where(
                Delivery.notification_id == uuid.UUID(sent["data"]["sendNotification"]["id"])
            )
        )
        outcome = await delivery.deliver(session, state.redis, state.settings, webhook.id)
        await session.refresh(webhook)
    assert outcome == delivery.Outcome()  # refused for good: not retried
    assert webhook.status == "dead"
    assert webhook.last_error.startswith("webhook refused: localhost resolves to")
    assert hook not in receiver.received
