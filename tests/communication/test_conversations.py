"""Direct and group conversations, messages, read receipts, Document attachments."""

from __future__ import annotations

import asyncio
import json
import uuid

from conftest import count_statements, graphql, sign_up

from subgraphs.communication.service.conversations import messages_channel

START = """mutation($i: StartConversationInput!) { startConversation(input: $i) { id kind } }"""
POST = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    id body attachments { id } sender { id } } }"""
READ = """query($id: ID!) { conversation(id: $id) { unreadCount members { id }
    messages { nodes { body readBy { id } } } } }"""


async def test_a_direct_conversation_with_receipts_and_attachments(clients) -> None:
    ada, bob = await sign_up(clients["identity"]), await sign_up(clients["identity"])
    communication = clients["communication"]
    started = await graphql(communication, START, {"i": {"memberIds": [bob.id]}}, ada.headers)
    conversation = started["data"]["startConversation"]
    assert conversation["kind"] == "direct"
    same = await graphql(communication, START, {"i": {"memberIds": [ada.id]}}, bob.headers)
    assert same["data"]["startConversation"]["id"] == conversation["id"]

    document = str(uuid.uuid4())
    posted = await graphql(
        communication,
        POST,
        {
            "i": {
                "conversationId": conversation["id"],
                "body": "See the spec",
                "attachmentIds": [document],
            }
        },
        ada.headers,
    )
    message = posted["data"]["sendMessage"]
    # A reference for the router to resolve at content, which checks the reader's access.
    assert message["attachments"] == [{"id": document}]
    assert message["sender"] == {"id": ada.id}

    unread = (await graphql(communication, READ, {"id": conversation["id"]}, bob.headers))["data"]
    assert unread["conversation"]["unreadCount"] == 1
    assert unread["conversation"]["messages"]["nodes"] == [{"body": "See the spec", "readBy": []}]
    await graphql(
        communication,
        "mutation($id: ID!) { markConversationRead(id: $id) { id } }",
        {"id": conversation["id"]},
        bob.headers,
    )
    seen = (await graphql(communication, READ, {"id": conversation["id"]}, ada.headers))["data"]
    assert seen["conversation"]["messages"]["nodes"][0]["readBy"] == [{"id": bob.id}]

    rest = await communication.get(
        f"/api/v1/conversations/{conversation['id']}/messages", headers=bob.headers
    )
    assert [m["attachment_ids"] for m in rest.json()["items"]] == [[document]]


async def test_outsiders_see_no_conversation_and_bad_input_is_refused(clients) -> None:
    ada, bob, eve = [await sign_up(clients["identity"]) for _ in range(3)]
    communication = clients["communication"]
    group = await graphql(
        communication, START, {"i": {"memberIds": [bob.id, eve.id], "title": "Tender"}}, ada.headers
    )
    assert group["data"]["startConversation"]["kind"] == "group"
    direct = await graphql(communication, START, {"i": {"memberIds": [bob.id]}}, ada.headers)
    hidden = await graphql(
        communication, READ, {"id": direct["data"]["startConversation"]["id"]}, eve.headers
    )
    assert hidden["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    alone = await graphql(communication, START, {"i": {"memberIds": [ada.id]}}, ada.headers)
    assert alone["errors"][0]["extensions"]["field"] == "memberIds"
    empty = await graphql(
        communication,
        POST,
        {"i": {"conversationId": direct["data"]["startConversation"]["id"], "body": " "}},
        ada.headers,
    )
    assert empty["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    rest = await communication.post(
        "/api/v1/conversations", json={"member_ids": ["nope"]}, headers=ada.headers
    )
    assert rest.status_code == 422 and rest.headers["content-type"] == "application/problem+json"


async def test_conversations_with_members_and_messages_cost_a_fixed_number_of_statements(
    apps, clients
) -> None:
    ada = await sign_up(clients["identity"])
    for _ in range(5):
        other = await sign_up(clients["identity"])
        started = await graphql(
            clients["communication"], START, {"i": {"memberIds": [other.id]}}, ada.headers
        )
        await graphql(
            clients["communication"],
            POST,
            {"i": {"conversationId": started["data"]["startConversation"]["id"], "body": "hi"}},
            ada.headers,
        )
    with count_statements(apps["communication"].state.engine) as sql:
        result = await graphql(
            clients["communication"],
            """{ conversations { nodes { members { id } unreadCount
                messages { nodes { body readBy { id } } } } } }""",
            {},
            ada.headers,
        )
    assert len(result["data"]["conversations"]["nodes"]) == 5
    # conversations, members, unread counts, messages
    assert sql.count == 4, sql.statements


MEMBERS = "query($id: ID!) { conversation(id: $id) { members { id } admins { id } } }"
ADD = """mutation($id: ID!, $m: [ID!]!) { addConversationMembers(id: $id, memberIds: $m) {
    members { id } } }"""
REMOVE = "mutation($id: ID!, $m: ID!) { removeConversationMember(id: $id, memberId: $m) }"
LEAVE = "mutation($id: ID!) { leaveConversation(id: $id) }"


async def test_group_admins_add_and_remove_members_and_members_leave(clients) -> None:
    ada, bob, eve, dan = [await sign_up(clients["identity"]) for _ in range(4)]
    communication = clients["communication"]
    started = await graphql(
        communication, START, {"i": {"memberIds": [bob.id], "title": "Bids"}}, ada.headers
    )
    group = started["data"]["startConversation"]["id"]

    # Only the creator (the group's admin) adds; outsiders do not even see the group.
    refused = await graphql(communication, ADD, {"id": group, "m": [eve.id]}, bob.headers)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    outsider = await graphql(communication, ADD, {"id": group, "m": [eve.id]}, eve.headers)
    assert outsider["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    added = await graphql(communication, ADD, {"id": group, "m": [eve.id, bob.id]}, ada.headers)
    assert {m["id"] for m in added["data"]["addConversationMembers"]["members"]} == {
        ada.id,
        bob.id,
        eve.id,
    }
    rest = await communication.post(
        f"/api/v1/conversations/{group}/members", json={"member_ids": [dan.id]}, headers=ada.headers
    )
    assert rest.status_code == 200, rest.text
    assert {m["user_id"]: m["role"] for m in rest.json()} == {
        ada.id: "admin",
        bob.id: "member",
        eve.id: "member",
        dan.id: "member",
    }

    # A member removes nobody but themselves; the admin removes anyone.
    denied = await graphql(communication, REMOVE, {"id": group, "m": eve.id}, bob.headers)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    removed = await graphql(communication, REMOVE, {"id": group, "m": eve.id}, ada.headers)
    assert removed["data"]["removeConversationMember"] is True
    gone = await graphql(communication, READ, {"id": group}, eve.headers)
    assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    post = await graphql(
        communication, POST, {"i": {"conversationId": group, "body": "x"}}, eve.headers
    )
    assert post["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    again = await graphql(communication, REMOVE, {"id": group, "m": eve.id}, ada.headers)
    assert again["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    left = await communication.delete(
        f"/api/v1/conversations/{group}/members/{dan.id}", headers=dan.headers
    )
    assert left.status_code == 204
    # The last admin leaves: the longest-standing member (bob) becomes admin.
    assert (await graphql(communication, LEAVE, {"id": group}, ada.headers))["data"] == {
        "leaveConversation": True
    }
    after = await graphql(communication, MEMBERS, {"id": group}, bob.headers)
    assert after["data"]["conversation"] == {
        "members": [{"id": bob.id}],
        "admins": [{"id": bob.id}],
    }
    listed = await communication.get(f"/api/v1/conversations/{group}/members", headers=bob.headers)
    assert [(m["user_id"], m["role"]) for m in listed.json()] == [(bob.id, "admin")]


async def test_direct_conversations_keep_their_pair_and_bad_input_is_refused(clients) -> None:
    ada, bob, eve = [await sign_up(clients["identity"]) for _ in range(3)]
    communication = clients["communication"]
    direct = (await graphql(communication, START, {"i": {"memberIds": [bob.id]}}, ada.headers))[
        "data"
    ]["startConversation"]["id"]
    for query, variables in (
        (ADD, {"id": direct, "m": [eve.id]}),
        (REMOVE, {"id": direct, "m": bob.id}),
        (LEAVE, {"id": direct}),
    ):
        answer = await graphql(communication, query, variables, ada.headers)
        assert answer["errors"][0]["extensions"] == {
            "code": "BAD_USER_INPUT",
            "field": "conversationId",
        }
    bogus = await graphql(communication, ADD, {"id": direct, "m": ["nope"]}, ada.headers)
    assert bogus["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    empty = await communication.post(
        f"/api/v1/conversations/{direct}/members", json={"member_ids": []}, headers=ada.headers
    )
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"
    malformed = await communication.delete(
        f"/api/v1/conversations/{direct}/members/nope", headers=ada.headers
    )
    assert malformed.status_code == 422


async def test_a_removed_member_hears_of_no_more_messages(apps, clients) -> None:
    ada, bob, eve = [await sign_up(clients["identity"]) for _ in range(3)]
    communication = clients["communication"]
    group = (
        await graphql(
            communication, START, {"i": {"memberIds": [bob.id, eve.id], "title": "T"}}, ada.headers
        )
    )["data"]["startConversation"]["id"]
    redis = apps["communication"].state.redis
    listeners = {}
    for account in (bob, eve):
        pubsub = redis.client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(redis.key(messages_channel(account.id)))
        listeners[account.id] = pubsub

    async def heard(account) -> list[str]:
        """What reached the account's channel in the next 0.8 s."""
        bodies: list[str] = []
        deadline = asyncio.get_running_loop().time() + 0.8
        while asyncio.get_running_loop().time() < deadline:
            message = await listeners[account.id].get_message(timeout=0.1)
            if message is not None:
                bodies.append(json.loads(message["data"])["body"])
        return bodies

    await graphql(communication, POST, {"i": {"conversationId": group, "body": "one"}}, ada.headers)
    assert await heard(bob) == ["one"] and await heard(eve) == ["one"]
    await graphql(communication, REMOVE, {"id": group, "m": eve.id}, ada.headers)
    await graphql(communication, POST, {"i": {"conversationId": group, "body": "two"}}, ada.headers)
    assert await heard(bob) == ["two"]
    assert await heard(eve) == []
    for pubsub in listeners.values():
        await pubsub.aclose()
