"""Direct and group conversations, messages, read receipts, Document attachments."""

from __future__ import annotations

import uuid

from conftest import count_statements, graphql, sign_up

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
