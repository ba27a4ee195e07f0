"""A list of documents loads only the columns its selection reads, and a document made from
a row reads every field exactly as one made from its model does."""

from __future__ import annotations

import re

import pytest
from conftest import count_statements
from content.conftest import DOCUMENT_FIELDS, gql
from graphql import GraphQLObjectType

import subgraphs.content.graphql as content_graphql

CREATE = (
    "mutation($i: CreateDocumentInput!) { createDocument(input: $i) {"
    " ... on Document { " + DOCUMENT_FIELDS + " documentType { key } latestVersion { number }"
    " myPermission } } }"
)


def _list(selection: str, fragments: str = "") -> str:
    return (
        "query($owner: ID!) { documents(filter: {ownerId: $owner}) { "
        + selection
        + " } } "
        + fragments
    )


EVERY_FIELD = (
    "nodes { " + DOCUMENT_FIELDS + " documentType { key } latestVersion { number } myPermission }"
)


def _page_columns(statements: list[str]) -> set[str]:
    """The columns the page's SELECT names (of `documents`)."""
    (page,) = [s for s in statements if re.search(r"FROM documents\b", s)]
    selected = re.split(r"\s+FROM\s+", page, maxsplit=1)[0].removeprefix("SELECT ")
    return {name.strip().removeprefix("documents.") for name in selected.split(",")}


async def test_a_document_reads_the_same_from_a_list_as_from_its_creation(clients, alice) -> None:
    created = await gql(
        clients["content"],
        CREATE,
        {
            "i": {
                "title": "Tender",
                "description": "For the new wing",
                "tags": ["rfp", "2027"],
                "metadata": {"budget": 120000, "lots": [1, 2]},
                "status": "FINAL",
            }
        },
        alice,
    )
    assert "errors" not in created, created
    document = created["data"]["createDocument"]  # made from the model the mutation wrote

    listed = await gql(clients["content"], _list(EVERY_FIELD), {"owner": alice.id}, alice)
    assert listed["data"]["documents"]["nodes"] == [document]

    by_id = await gql(
        clients["content"],
        "query($id: ID!) { document(id: $id) { " + EVERY_FIELD.removeprefix("nodes { ") + " }",
        {"id": document["id"]},
        alice,
    )
    assert by_id["data"]["document"] == document


@pytest.mark.parametrize(
    ("selection", "columns"),
    [
        ("nodes { id title owner { id } }", {"id", "created_at", "title", "owner_id"}),
        ("nodes { __typename } pageInfo { hasNextPage endCursor }", {"id", "created_at"}),
        ("nodes { metadata documentType { key } }", {"id", "created_at", "metadata", "type"}),
        (  # the field named twice: one list, merged selections
            "nodes { title } } documents(filter: {ownerId: $owner}) { nodes { status }",
            {"id", "created_at", "title", "status"},
        ),
        (
            (
                "... on DocumentConnection { nodes { ...Tags } }",
                "fragment Tags on Document { tags }",
            ),
            {"id", "created_at", "tags"},
        ),
    ],
)
async def test_a_list_selects_only_the_columns_its_fields_read(
    apps, clients, alice, selection, columns
) -> None:
    await gql(clients["content"], CREATE, {"i": {"title": "One"}}, alice)
    query = _list(*selection) if isinstance(selection, tuple) else _list(selection)
    with count_statements(apps["content"].state.engine) as sql:
        listed = await gql(clients["content"], query, {"owner": alice.id}, alice)
    assert "errors" not in listed
    assert _page_columns(sql.statements) == columns


async def test_a_field_not_known_to_read_a_column_loads_them_all(
    apps, clients, alice, monkeypatch
) -> None:
    monkeypatch.delitem(content_graphql._COLUMNS_READ, "title")
    await gql(clients["content"], CREATE, {"i": {"title": "One"}}, alice)
    with count_statements(apps["content"].state.engine) as sql:
        listed = await gql(
            clients["content"], _list("nodes { id title }"), {"owner": alice.id}, alice
        )
    assert listed["data"]["documents"]["nodes"][0]["title"] == "One"
    assert {"title", "description", "metadata", "deleted_at"} <= _page_columns(sql.statements)


def test_every_field_of_document_says_which_columns_it_reads() -> None:
    document_type = content_graphql.schema._schema.get_type("Document")
    assert isinstance(document_type, GraphQLObjectType)
    assert set(document_type.fields) <= set(content_graphql._COLUMNS_READ)


def test_a_document_made_from_a_row_has_no_fields_but_its_own() -> None:
    from subgraphs.content.service.documents import DOCUMENT_FIELDS as COLUMNS

    row = type("Row", (), {column.key: None for column in COLUMNS})()
    document = content_graphql.Document.from_model(row)
    with pytest.raises(AttributeError):
        getattr(document, "not_a_field")  # noqa: B009
