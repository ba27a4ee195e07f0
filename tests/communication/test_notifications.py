"""Notifications in process: access, templates, idempotency, preferences, read state, REST."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from conftest import count_statements, graphql, sign_up
from sqlalchemy import select

from subgraphs.communication.models import Delivery
from subgraphs.communication.templates import TemplatesFileError, load_templates

SEND = """mutation($i: SendNotificationInput!) { sendNotification(input: $i) {
    id title body category status readAt deliveries { channel status } } }"""
INBOX = """query($first: Int = 20, $unread: Boolean = false) {
    notifications(first: $first, unreadOnly: $unread) {
        nodes { id title read } pageInfo { hasNextPage endCursor } unreadCount } }"""


async def send(client, account, **input) -> dict:
    result = await graphql(client, SEND, {"i": input}, account.headers)
    assert "errors" not in result, result
    return result["data"]["sendNotification"]


async def test_a_user_notifies_themselves_and_reads_marks_and_counts(clients) -> None:
    ada = await sign_up(clients["identity"])
    communication = clients["communication"]
    first = await send(communication, ada, recipientId=ada.id, title="Hi", body="there")
    await send(communication, ada, recipientId=ada.id, title="Again")
    assert first["status"] == "QUEUED" and first["readAt"] is None
    # No address is known for Ada yet (identity's events bring it): email is recorded skipped.
    assert sorted(first["deliveries"], key=lambda d: d["channel"]) == [
        {"channel": "EMAIL", "status": "SKIPPED"},
        {"channel": "IN_APP", "status": "QUEUED"},
    ]

    inbox = (await graphql(communication, INBOX, {}, ada.headers))["data"]["notifications"]
    assert [n["title"] for n in inbox["nodes"]] == ["Again", "Hi"]
    assert inbox["unreadCount"] == 2

    read = await graphql(
        communication,
        "mutation($id: ID!) { markNotificationRead(id: $id) { readAt } }",
        {"id": first["id"]},
        ada.headers,
    )
    assert read["data"]["markNotificationRead"]["readAt"]
    unread = (await graphql(communication, INBOX, {"unread": True}, ada.headers))["data"]
    assert [n["title"] for n in unread["notifications"]["nodes"]] == ["Again"]
    assert unread["notifications"]["unreadCount"] == 1

    marked = await graphql(communication, "mutation { markAllNotificationsRead }", {}, ada.headers)
    assert marked["data"]["markAllNotificationsRead"] == 1
    count = await communication.get("/api/v1/notifications/unread-count", headers=ada.headers)
    assert count.json() == {"unread_count": 0}


async def test_nobody_reads_or_notifies_someone_else_without_a_scope(apps, clients) -> None:
    ada, bob = await sign_up(clients["identity"]), await sign_up(clients["identity"])
    admin = await sign_up(clients["identity"], roles=("admin",), apps=apps)
    communication = clients["communication"]
    mine = await send(communication, ada, recipientId=ada.id, title="Private")

    refused = await graphql(
        communication, SEND, {"i": {"recipientId": ada.id, "title": "Spam"}}, bob.headers
    )
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    other = await graphql(
        communication,
        "query($r: ID!) { notifications(recipientId: $r) { nodes { id } } }",
        {"r": ada.id},
        bob.headers,
    )
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    stolen = await graphql(
        communication,
        "mutation($id: ID!) { markNotificationRead(id: $id) { id } }",
        {"id": mine["id"]},
        bob.headers,
    )
    assert stolen["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    entity = await graphql(
        communication,
        "query($r: [_Any!]!) { _entities(representations: $r) {"
        " ... on User { notifications { nodes { id } } } } }",
        {"r": [{"__typename": "User", "id": ada.id}]},
        bob.headers,
    )
    assert entity["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await graphql(communication, INBOX)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    # An administrator notifies anyone and reads anyone's notifications.
    await send(communication, admin, recipientId=bob.id, title="Welcome", category="onboarding")
    theirs = await graphql(
        communication,
        "query($r: ID!) { notifications(recipientId: $r) { nodes { title category } } }",
        {"r": bob.id},
        admin.headers,
    )
    assert theirs["data"]["notifications"]["nodes"] == [
        {"title": "Welcome", "category": "onboarding"}
    ]


async def test_the_same_idempotency_key_never_sends_twice(apps, clients) -> None:
    ada = await sign_up(clients["identity"])
    key = f"order-{uuid.uuid4()}"
    first = await send(
        clients["communication"], ada, recipientId=ada.id, title="Paid", idempotencyKey=key
    )
    again = await send(
        clients["communication"], ada, recipientId=ada.id, title="Paid", idempotencyKey=key
    )
    assert again["id"] == first["id"]
    async with apps["communication"].state.sessions() as session:
        deliveries = (
            await session.scalars(
                select(Delivery).where(Delivery.notification_id == uuid.UUID(first["id"]))
            )
        ).all()
    assert sorted(d.channel for d in deliveries) == ["email", "in_app"]


async def test_templates_render_per_locale_and_check_their_variables(clients) -> None:
    ada = await sign_up(clients["identity"])
    communication = clients["communication"]
    shared = await send(
        communication,
        ada,
        recipientId=ada.id,
        template="document.shared",
        variables={"document_title": "Tender RC", "permission": "read"},
        category="documents",
        link={"type": "Document", "id": str(uuid.uuid4())},
    )
    assert shared["title"] == "“Tender RC” was shared with you"
    assert shared["body"] == "You can read it."

    missing = await graphql(
        communication,
        SEND,
        {
            "i": {
                "recipientId": ada.id,
                "template": "document.shared",
                "variables": {"permission": "read"},
            }
        },
        ada.headers,
    )
    assert missing["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "variables"}
    assert "document_title" in missing["errors"][0]["message"]
    unknown = await graphql(
        communication,
        SEND,
        {"i": {"recipientId": ada.id, "template": "nope"}},
        ada.headers,
    )
    assert unknown["errors"][0]["extensions"]["field"] == "template"
    empty = await graphql(
        communication, SEND, {"i": {"recipientId": ada.id, "title": ""}}, ada.headers
    )
    assert empty["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}


def test_a_template_using_an_undeclared_variable_is_refused_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "templates.yaml"
    bad.write_text(
        "templates:\n  t:\n    variables: [a]\n    in_app:\n"
        "      en: {title: '{{ a }}', body: '{{ b }}'}\n"
    )
    with pytest.raises(TemplatesFileError, match="undeclared variables b"):
        load_templates(bad)


async def test_preferences_turn_channels_off_and_batch_email_into_digests(apps, clients) -> None:
    ada = await sign_up(clients["identity"])
    communication = clients["communication"]
    off = await communication.put(
        "/api/v1/notifications/preferences",
        json={"category": "marketing", "channel": "in_app", "enabled": False},
        headers=ada.headers,
    )
    assert off.status_code == 200, off.text
    quiet = await send(communication, ada, recipientId=ada.id, title="Sale", category="marketing")
    assert [d["channel"] for d in quiet["deliveries"]] == ["EMAIL"]

    listed = await communication.get("/api/v1/notifications/preferences", headers=ada.headers)
    assert listed.json() == [
        {"category": "marketing", "channel": "in_app", "enabled": False, "digest_seconds": None}
    ]
    bad = await graphql(
        communication,
        """mutation { setNotificationPreference(input: {category: "x", channel: IN_APP,
            digestSeconds: 3600}) { category } }""",
        {},
        ada.headers,
    )
    assert bad["errors"][0]["extensions"]["field"] == "digestSeconds"
    problem = await communication.put(
        "/api/v1/notifications/preferences",
        json={"category": "x", "channel": "fax"},
        headers=ada.headers,
    )
    assert problem.status_code == 422
    assert problem.headers["content-type"] == "application/problem+json"


async def test_rest_lists_and_marks_the_callers_notifications(clients) -> None:
    ada = await sign_up(clients["identity"])
    communication = clients["communication"]
    created = await communication.post(
        "/api/v1/notifications",
        json={"recipient_id": ada.id, "title": "Via REST"},
        headers=ada.headers,
    )
    assert created.status_code == 201, created.text
    read = await communication.post(
        f"/api/v1/notifications/{created.json()['id']}/read", headers=ada.headers
    )
    assert read.status_code == 200 and read.json()["read_at"] is not None
    listed = await communication.get("/api/v1/notifications", headers=ada.headers)
    assert [n["title"] for n in listed.json()["items"]] == ["Via REST"]
    anonymous = await communication.get("/api/v1/notifications")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    bogus = await communication.get(f"/api/v1/notifications/{uuid.uuid4()}", headers=ada.headers)
    assert bogus.status_code == 404 and bogus.json()["code"] == "NOT_FOUND"


async def test_a_page_of_notifications_with_counts_and_deliveries_is_four_statements(
    apps, clients
) -> None:
    ada = await sign_up(clients["identity"])
    for index in range(15):
        await send(clients["communication"], ada, recipientId=ada.id, title=f"n{index}")
    with count_statements(apps["communication"].state.engine) as sql:
        result = await graphql(
            clients["communication"],
            """{ notifications(first: 15) { unreadCount nodes { title deliveries {
                channel attemptHistory { status } } } } }""",
            {},
            ada.headers,
        )
    assert len(result["data"]["notifications"]["nodes"]) == 15
    # the page, the unread count, the deliveries, their attempts
    assert sql.count == 4, sql.statements


def test_a_secret_variable_is_refused_in_a_title_or_subject_at_load(tmp_path: Path) -> None:
    bad = tmp_path / "templates.yaml"
    bad.write_text(
        "templates:\n  t:\n    variables: [token]\n    secrets: [token]\n    email:\n"
        "      en: {subject: 'Code {{ token }}', body: '{{ token }}'}\n"
    )
    with pytest.raises(TemplatesFileError, match="subject: uses a secret variable"):
        load_templates(bad)
    undeclared = tmp_path / "undeclared.yaml"
    undeclared.write_text(
        "templates:\n  t:\n    variables: [a]\n    secrets: [token]\n    email:\n"
        "      en: {subject: '{{ a }}', body: '{{ a }}'}\n"
    )
    with pytest.raises(TemplatesFileError, match="secrets: expected a list of declared"):
        load_templates(undeclared)
