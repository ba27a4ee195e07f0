"""Helpers for content's tests: signed-in people, documents made through the API, uploads."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from conftest import PASSWORD, Account, graphql, sign_up, unique_email

DOCUMENT_FIELDS = """id title description type tags metadata status version visibility
    organizationId createdAt updatedAt deletedAt owner { id }"""


@pytest.fixture
async def alice(clients) -> Account:
    return await sign_up(clients["identity"], display_name="Alice")


@pytest.fixture
async def bob(clients) -> Account:
    return await sign_up(clients["identity"], display_name="Bob")


@pytest.fixture
async def admin(clients, apps) -> Account:
    return await sign_up(clients["identity"], display_name="Root", roles=("admin",), apps=apps)


async def organization_with(apps, clients, **members: str) -> tuple[uuid.UUID, dict[str, Account]]:
    """A new organization and signed-in members, each with the role given: name=role."""
    from subgraphs.identity.models import Organization, RoleAssignment

    organization = Organization(slug=f"org-{uuid.uuid4().hex[:10]}", name="Org")
    async with apps["identity"].state.sessions() as session:
        session.add(organization)
        await session.commit()
    accounts = {}
    for name, role in members.items():
        email = unique_email(name)
        registered = await clients["identity"].post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "display_name": name},
        )
        assert registered.status_code == 201, registered.text
        user_id = registered.json()["id"]
        async with apps["identity"].state.sessions() as session:
            session.add(
                RoleAssignment(
                    user_id=uuid.UUID(user_id), role=role, organization_id=organization.id
                )
            )
            await session.commit()
        login = await clients["identity"].post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        tokens = login.json()
        accounts[name] = Account(
            user_id, email, PASSWORD, tokens["access_token"], tokens["refresh_token"]
        )
    return organization.id, accounts


async def create_document(
    client: httpx.AsyncClient, account: Account, title: str = "A document", **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/documents", json={"title": title, **fields}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    document_id: str,
    content: bytes,
    filename: str = "file.txt",
    media_type: str = "text/plain",
) -> httpx.Response:
    return await client.post(
        f"/api/v1/documents/{document_id}/versions",
        files={"file": (filename, content, media_type)},
        headers=account.headers,
    )


async def gql(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, account=None
) -> dict[str, Any]:
    return await graphql(client, query, variables, account.headers if account else None)
