"""Every field the schema protects with @authenticated or @requiresScopes is refused to an
anonymous caller, and every @requiresScopes field to a caller without the scope — through
the router and straight at the owning subgraph. The fields are found in schema/, so a new
protected field is covered by this test without writing a new one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from conftest import ROOT, SERVICES
from graphql import (
    EnumTypeDefinitionNode,
    FieldDefinitionNode,
    InputObjectTypeDefinitionNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectTypeDefinitionNode,
    TypeNode,
    parse,
)
from integration.conftest import execute

REFUSED = {"UNAUTHENTICATED", "FORBIDDEN", "UNAUTHORIZED_FIELD_OR_TYPE"}


@dataclass(frozen=True)
class Protected:
    subgraph: str
    operation: str  # "query" or "mutation"
    field: str
    needs_scope: bool
    document: str

    def __str__(self) -> str:
        return f"{self.subgraph}:{self.operation}.{self.field}"


def _named(node: TypeNode) -> str:
    while not isinstance(node, NamedTypeNode):
        node = node.type  # type: ignore[attr-defined]
    return node.name.value


def _value(node: TypeNode, inputs: dict[str, InputObjectTypeDefinitionNode]) -> str:
    """A literal of the argument's type, only as real as needed to reach the resolver."""
    if isinstance(node, NonNullTypeNode):
        return _value(node.type, inputs)
    if isinstance(node, ListTypeNode):
        return f"[{_value(node.type, inputs)}]"
    name = _named(node)
    if name in ENUMS:
        return ENUMS[name]
    if name in inputs:
        fields = [
            f"{f.name.value}: {_value(f.type, inputs)}"
            for f in inputs[name].fields or ()
            if isinstance(f.type, NonNullTypeNode) and f.default_value is None
        ]
        return "{" + ", ".join(fields) + "}"
    return {"Int": "1", "Float": "1.0", "Boolean": "true"}.get(name, f'"{uuid.uuid4()}"')


# enum type name -> its first value, from every subgraph's schema
ENUMS: dict[str, str] = {}


def protected_fields() -> list[Protected]:
    found = []
    for subgraph in SERVICES:
        document = parse((ROOT / "schema" / f"{subgraph}.graphql").read_text())
        ENUMS.update(
            {
                d.name.value: d.values[0].name.value
                for d in document.definitions
                if isinstance(d, EnumTypeDefinitionNode) and d.values
            }
        )
        inputs = {
            d.name.value: d
            for d in document.definitions
            if isinstance(d, InputObjectTypeDefinitionNode)
        }
        objects = {
            d.name.value: d for d in document.definitions if isinstance(d, ObjectTypeDefinitionNode)
        }
        for operation, type_name in (("query", "Query"), ("mutation", "Mutation")):
            root = objects.get(type_name)
            for field in (root.fields if root else None) or ():
                directives = {d.name.value for d in field.directives or ()}
                if not directives & {"authenticated", "requiresScopes"}:
                    continue
                found.append(
                    Protected(
                        subgraph,
                        operation,
                        field.name.value,
                        "requiresScopes" in directives,
                        _operation(operation, field, inputs),
                    )
                )
    return found


def _operation(
    operation: str, field: FieldDefinitionNode, inputs: dict[str, InputObjectTypeDefinitionNode]
) -> str:
    args = [
        f"{a.name.value}: {_value(a.type, inputs)}"
        for a in field.arguments or ()
        if isinstance(a.type, NonNullTypeNode) and a.default_value is None
    ]
    call = field.name.value + (f"({', '.join(args)})" if args else "")
    scalar = _named(field.type) in {"String", "Boolean", "Int", "ID", "Float", "DateTime", "JSON"}
    return f"{operation} {{ {call}{'' if scalar else ' { __typename }'} }}"


FIELDS = protected_fields()


def test_the_schema_protects_fields_in_several_subgraphs() -> None:
    assert {f.subgraph for f in FIELDS} >= {"identity"}
    assert any(f.needs_scope for f in FIELDS) and any(not f.needs_scope for f in FIELDS)


@pytest.fixture(scope="module")
async def member_token(stack) -> str:
    async with httpx.AsyncClient(base_url=stack.urls["router"], timeout=30) as router:
        email = f"matrix-{uuid.uuid4().hex[:8]}@example.com"
        password = "a sturdy passphrase 42"
        await execute(
            router,
            "mutation($i: RegisterInput!) { register(input: $i) { id } }",
            {"i": {"email": email, "password": password, "displayName": "Member"}},
        )
        login = await execute(
            router,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) {"
            " ... on TokenPair { accessToken } } }",
            {"e": email, "p": password},
        )
    return login["login"]["accessToken"]


def refusal_codes(body: dict) -> set[str]:
    return {e.get("extensions", {}).get("code") for e in body.get("errors", [])}


@pytest.mark.parametrize("field", FIELDS, ids=str)
@pytest.mark.parametrize("where", ["router", "subgraph"])
async def test_an_anonymous_caller_is_refused(stack, field: Protected, where: str) -> None:
    url = stack.urls["router" if where == "router" else field.subgraph]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/graphql", json={"query": field.document})
    body = response.json()
    assert refusal_codes(body) & REFUSED, (field.document, body)
    assert not (body.get("data") or {}).get(field.field), body


@pytest.mark.parametrize("field", [f for f in FIELDS if f.needs_scope], ids=str)
@pytest.mark.parametrize("where", ["router", "subgraph"])
async def test_a_caller_without_the_scope_is_refused(
    stack, member_token: str, field: Protected, where: str
) -> None:
    url = stack.urls["router" if where == "router" else field.subgraph]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={"query": field.document},
            headers={"authorization": f"Bearer {member_token}"},
        )
    body = response.json()
    assert refusal_codes(body) & REFUSED, (field.document, body)
    assert not (body.get("data") or {}).get(field.field), body


async def test_the_router_refuses_a_bad_token_before_any_subgraph(stack, member_token) -> None:
    head, payload, signature = member_token.split(".")
    tampered = f"{head}.{payload}.{signature[:-6]}AAAAAA"
    async with httpx.AsyncClient(base_url=stack.urls["router"], timeout=30) as router:
        response = await router.post(
            "/graphql",
            json={"query": "{ roles { name } }"},
            headers={"authorization": f"Bearer {tampered}"},
        )
        good = await router.post(
            "/graphql",
            json={"query": "{ me { displayName } }"},
            headers={"authorization": f"Bearer {member_token}"},
        )
    assert response.status_code == 401, response.text
    assert "data" not in response.json() or response.json()["data"] is None
    assert good.json() == {"data": {"me": {"displayName": "Member"}}}
