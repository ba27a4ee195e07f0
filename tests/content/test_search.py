"""Full-text search: weighted ranking, safe highlighted snippets, filters, cursor pages, a
trigram fallback for typos, and a Redis cache that a change invalidates."""

from __future__ import annotations

import uuid

from conftest import count_statements
from content.conftest import create_document, gql, upload

SEARCH = """query($q: String!, $first: Int = 20, $after: String, $f: DocumentFilter) {
    searchDocuments(query: $q, first: $first, after: $after, filter: $f) {
        mode nodes { rank snippet document { id title } } pageInfo { hasNextPage endCursor } } }"""


def word() -> str:
    return f"w{uuid.uuid4().hex[:8]}"


async def search(client, account, q: str, **variables) -> dict:
    result = await gql(client, SEARCH, {"q": q, **variables}, account)
    assert "errors" not in result, result
    return result["data"]["searchDocuments"]


async def test_title_outranks_tags_metadata_and_body(clients, alice) -> None:
    content = clients["content"]
    term = word()
    body = await create_document(content, alice, "In the body")
    await upload(content, alice, body["id"], f"some text about {term} here".encode())
    await create_document(content, alice, "In the metadata", metadata={"note": term})
    await create_document(content, alice, "In the tags", tags=[term])
    await create_document(content, alice, f"In the title {term}")

    found = await search(content, alice, term)
    assert found["mode"] == "FULLTEXT"
    assert [n["document"]["title"] for n in found["nodes"]] == [
        f"In the title {term}",
        "In the tags",
        "In the metadata",
        "In the body",
    ]
    ranks = [n["rank"] for n in found["nodes"]]
    assert ranks == sorted(ranks, reverse=True) and len(set(ranks)) == 4


async def test_snippets_highlight_matches_and_escape_html(clients, alice) -> None:
    content = clients["content"]
    term = word()
    document = await create_document(content, alice, "Notes")
    text = f"<script>alert(1)</script> if a < b then the {term} appears & c > d"
    await upload(content, alice, document["id"], text.encode(), "n.txt", "text/plain")
    (hit,) = (await search(content, alice, term))["nodes"]
    assert f"<mark>{term}</mark>" in hit["snippet"]
    unmarked = hit["snippet"].replace("<mark>", "").replace("</mark>", "")
    assert "<" not in unmarked and "&lt; b" in unmarked


async def test_filters_and_cursor_pages(clients, alice, bob) -> None:
    content = clients["content"]
    term = word()
    for i in range(5):
        await create_document(
            content, alice, f"{term} report {i}", tags=["q1" if i % 2 else "q2"], status="draft"
        )
    await create_document(content, bob, f"{term} bob's report")

    seen, after = [], None
    while True:
        page = await search(content, alice, term, first=2, after=after)
        seen += [n["document"]["title"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sorted(seen) == [f"{term} report {i}" for i in range(5)]  # never bob's

    tagged = await search(content, alice, term, f={"tags": ["q1"]})
    assert sorted(n["document"]["title"] for n in tagged["nodes"]) == [
        f"{term} report 1",
        f"{term} report 3",
    ]
    final = await search(content, alice, term, f={"status": "FINAL"})
    assert final["nodes"] == [] or final["mode"] == "FUZZY"
    rest = await content.get(
        "/api/v1/documents/search",
        params={"q": term, "tag": "q2", "limit": 2},
        headers=alice.headers,
    )
    assert rest.status_code == 200 and len(rest.json()["items"]) == 2
    assert rest.json()["next_cursor"] and rest.json()["mode"] == "fulltext"


async def test_a_typo_falls_back_to_trigram_similarity(clients, alice) -> None:
    content = clients["content"]
    stem = uuid.uuid4().hex[:6]
    await create_document(content, alice, f"Specification {stem}")
    found = await search(content, alice, f"Specifcation {stem}")
    assert found["mode"] == "FUZZY"
    assert [n["document"]["title"] for n in found["nodes"]] == [f"Specification {stem}"]


async def test_results_are_cached_and_a_change_invalidates_them(clients, apps, alice) -> None:
    content = clients["content"]
    term = word()
    document = await create_document(content, alice, f"{term} cached")
    first = await search(content, alice, term)
    with count_statements(apps["content"].state.engine) as sql:
        again = await search(content, alice, term)
    assert again == first
    assert sql.count == 1  # the documents, loaded again through the access rules; no ranking

    patched = await content.patch(
        f"/api/v1/documents/{document['id']}",
        json={"version": 1, "title": "renamed"},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    assert (await search(content, alice, term))["nodes"] == []


async def test_a_bad_query_or_cursor_is_the_callers_mistake(clients, alice) -> None:
    content = clients["content"]
    for variables in ({"q": " "}, {"q": "x", "after": "nope"}, {"q": "x" * 501}):
        result = await gql(content, SEARCH, variables, alice)
        assert result["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    anonymous = await gql(content, SEARCH, {"q": "anything"})
    assert anonymous["data"]["searchDocuments"]["nodes"] == []


async def test_reindexing_rebuilds_the_same_vectors(clients, apps, alice) -> None:
    """`python -m subgraphs.content reindex` (after the language changed) agrees with writes."""
    import asyncio
    import sys

    from conftest import ROOT
    from sqlalchemy import select, text

    from subgraphs.content.models import Document

    content = clients["content"]
    term = word()
    document = await create_document(
        content, alice, "Reindexed", tags=["lot"], metadata={"ref": term}, description="about"
    )
    await upload(content, alice, document["id"], b"body words here")
    vector = select(text("search_vector::text")).where(Document.id == uuid.UUID(document["id"]))
    async with apps["content"].state.sessions() as session:
        written = await session.scalar(vector)
        await session.execute(text("UPDATE documents SET search_vector = NULL"))
        await session.commit()
    assert (await search(content, alice, term))["nodes"] == []

    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "subgraphs.content", "reindex", cwd=ROOT
    )
    assert await command.wait() == 0
    async with apps["content"].state.sessions() as session:
        assert await session.scalar(vector) == written
    found = await search(content, alice, term)
    assert [n["document"]["title"] for n in found["nodes"]] == ["Reindexed"]


async def test_an_update_keeps_the_body_text_in_the_vector(clients, alice) -> None:
    """The body text is not loaded with the document (deferred): the update's new vector
    takes it from the row, so the body still matches after a title change."""
    content = clients["content"]
    term = word()
    document = await create_document(content, alice, "Before")
    await upload(content, alice, document["id"], f"the body says {term}".encode())
    current = await gql(
        content, "query($id: ID!) { document(id: $id) { version } }", {"id": document["id"]}, alice
    )
    updated = await gql(
        content,
        "mutation($i: UpdateDocumentInput!) {"
        " updateDocument(input: $i) { ... on Document { title } } }",
        {
            "i": {
                "id": document["id"],
                "version": current["data"]["document"]["version"],
                "title": "After",
            }
        },
        alice,
    )
    assert updated["data"]["updateDocument"] == {"title": "After"}, updated
    assert [n["document"]["title"] for n in (await search(content, alice, term))["nodes"]] == [
        "After"
    ]
    assert [n["document"]["title"] for n in (await search(content, alice, "after"))["nodes"]] == [
        "After"
    ]
