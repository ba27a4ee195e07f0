"""Roles and permissions from configuration, organizations, admin scopes, security audit."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import jwt
import pytest
from conftest import ROOT, client_for, graphql, sign_up

from subgraphs.identity import SUBGRAPH
from subgraphs.identity.roles import RolesFileError, load_roles

GRANT = """mutation($i: RoleGrantInput!) {
    grantRole(input: $i) { id roles { role organizationId } } }"""
CREATE_ORGANIZATION = """mutation($i: CreateOrganizationInput!) { createOrganization(input: $i) {
    id slug } }"""


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
async def procurement(apps):
    """An identity app configured with the procurement roles (buyer, supplier, evaluator)."""
    settings = SUBGRAPH.settings_class(
        roles_file=ROOT / "subgraphs/identity/roles/procurement.yaml"
    )
    app = SUBGRAPH.app(settings)
    async with client_for(app) as client:
        yield client
    await app.state.redis.close()
    await app.state.engine.dispose()


async def test_deployment_roles_come_from_configuration(procurement) -> None:
    roles = await graphql(procurement, "{ roles { name permissions builtIn } }")
    by_name = {role["name"]: role for role in roles["data"]["roles"]}
    assert {"admin", "member", "buyer", "supplier", "evaluator"} <= set(by_name)
    assert by_name["admin"]["builtIn"] and not by_name["buyer"]["builtIn"]
    assert "workflows:start" in by_name["buyer"]["permissions"]


def test_a_bad_roles_file_is_refused_with_where_it_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "roles.yaml"
    bad.write_text("roles:\n  Buyer!:\n    permissions: [documents:read]\n")
    with pytest.raises(RolesFileError, match=r"roles\.Buyer!"):
        load_roles(bad)
    bad.write_text("roles:\n  admin:\n    permissions: []\n")
    with pytest.raises(RolesFileError, match="built in"):
        load_roles(bad)


async def test_organization_roles_reach_the_token(apps, procurement) -> None:
    admin = await sign_up(procurement, roles=("admin",), apps=apps)
    buyer = await sign_up(procurement)
    org = await graphql(
        procurement,
        CREATE_ORGANIZATION,
        {"i": {"slug": f"lyon-{buyer.id[:8]}", "name": "City of Lyon"}},
        admin.headers,
    )
    org_id = org["data"]["createOrganization"]["id"]
    granted = await graphql(
        procurement,
        GRANT,
        {"i": {"userId": buyer.id, "role": "buyer", "organizationId": org_id}},
        admin.headers,
    )
    assert {"role": "buyer", "organizationId": org_id} in granted["data"]["grantRole"]["roles"]

    unknown = await graphql(
        procurement, GRANT, {"i": {"userId": buyer.id, "role": "pilot"}}, admin.headers
    )
    assert unknown["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "buyer" in unknown["errors"][0]["message"]  # names the roles that exist

    refreshed = await procurement.post(
        "/api/v1/auth/refresh", json={"refresh_token": buyer.refresh_token}
    )
    token = claims(refreshed.json()["access_token"])
    assert token["orgs"] == {org_id: ["buyer"]}
    assert "workflows:start" in token["scope"].split()

    mine = await graphql(
        procurement,
        "{ organizations { nodes { id members { userId roles } } } }",
        headers={"authorization": f"Bearer {refreshed.json()['access_token']}"},
    )
    assert [o["id"] for o in mine["data"]["organizations"]["nodes"]] == [org_id]
    me = await graphql(
        procurement,
        "{ me { organizations { id name } roles { role organization { slug } } } }",
        headers={"authorization": f"Bearer {refreshed.json()['access_token']}"},
    )
    assert me["data"]["me"]["organizations"] == [{"id": org_id, "name": "City of Lyon"}]
    assert {"role": "buyer", "organization": {"slug": f"lyon-{buyer.id[:8]}"}} in me["data"]["me"][
        "roles"
    ]


async def test_admin_operations_need_their_scope(clients) -> None:
    identity = clients["identity"]
    member = await sign_up(identity)
    operations = [
        "{ users { nodes { id } } }",
        "{ securityEvents { nodes { id } } }",
        'mutation { createOrganization(input: {slug: "x", name: "X"}) { id } }',
        "mutation { rotateSigningKey }",
        f'mutation {{ grantRole(input: {{userId: "{member.id}", role: "admin"}}) {{ id }} }}',
    ]
    for operation in operations:
        as_member = await graphql(identity, operation, headers=member.headers)
        assert as_member["errors"][0]["extensions"]["code"] == "FORBIDDEN", operation
        anonymous = await graphql(identity, operation)
        assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", operation
    rest = await identity.get("/api/v1/users", headers=member.headers)
    assert rest.status_code == 403


async def test_emails_are_private_to_their_owner_and_user_readers(apps, clients) -> None:
    identity = clients["identity"]
    alice, bob = await sign_up(identity), await sign_up(identity)
    admin = await sign_up(identity, roles=("admin",), apps=apps)
    query = "query($id: ID!) { user(id: $id) { email displayName } }"
    assert (await graphql(identity, query, {"id": alice.id}, alice.headers))["data"]["user"][
        "email"
    ] == alice.email
    assert (await graphql(identity, query, {"id": alice.id}, bob.headers))["data"]["user"][
        "email"
    ] is None
    assert (await graphql(identity, query, {"id": alice.id}, admin.headers))["data"]["user"][
        "email"
    ] == alice.email
    assert (await identity.get(f"/api/v1/users/{alice.id}", headers=bob.headers)).status_code == 403


async def test_security_events_record_who_what_whom_where_and_which_request(apps, clients) -> None:
    identity = clients["identity"]
    admin = await sign_up(identity, roles=("admin",), apps=apps)
    user = await sign_up(identity)
    await identity.post(
        "/api/v1/auth/login",
        json={"email": user.email, "password": "wrong password here"},
        headers={"x-request-id": "req-audit-1"},
    )
    await graphql(
        identity,
        GRANT,
        {"i": {"userId": user.id, "role": "admin"}},
        {**admin.headers, "x-request-id": "req-audit-2"},
    )
    events = await graphql(
        identity,
        """query($u: ID!) { securityEvents(userId: $u, first: 50) { nodes {
            type actorId targetUserId ip requestId details } } }""",
        {"u": user.id},
        admin.headers,
    )
    by_type = {e["type"]: e for e in events["data"]["securityEvents"]["nodes"]}
    assert {"user.registered", "login.succeeded", "login.failed", "role.granted"} <= set(by_type)
    failed = by_type["login.failed"]
    assert (
        failed["requestId"] == "req-audit-1" and failed["ip"] and failed["targetUserId"] == user.id
    )
    granted = by_type["role.granted"]
    assert granted["actorId"] == admin.id and granted["details"]["role"] == "admin"
    assert granted["requestId"] == "req-audit-2"

    rest = await identity.get(
        "/api/v1/audit/security-events", params={"user_id": user.id}, headers=admin.headers
    )
    assert rest.status_code == 200
    assert {e["type"] for e in rest.json()["items"]} >= set(by_type)


async def grant_admin(email: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "subgraphs.identity",
        "grant-admin",
        email,
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    _, stderr = await process.communicate()
    return process.returncode or 0, stderr.decode()


async def test_the_first_administrator_is_made_from_the_command_line(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    code, stderr = await grant_admin(account.email.upper())
    assert code == 0, stderr
    refreshed = await identity.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert "admin" in claims(refreshed.json()["access_token"])["roles"]
    code, stderr = await grant_admin("nobody@example.com")
    assert code == 1 and "register first" in stderr
