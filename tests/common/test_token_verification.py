"""Every subgraph verifies tokens itself. Each kind of bad token is refused with
UNAUTHENTICATED by a subgraph other than identity (content here), over GraphQL and REST."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from conftest import graphql, sign_up
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from subgraphs.identity import SUBGRAPH, keys
from subgraphs.identity.settings import IdentitySettings


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made(header: dict, claims: dict, sign) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{sign(signing_input.encode())}"


async def signed_by_identity(apps, claims: dict) -> str:
    """A token signed with identity's real current key (to test the claim checks alone)."""
    async with apps["identity"].state.sessions() as session:
        settings = SUBGRAPH.settings()
        assert isinstance(settings, IdentitySettings)
        key = await keys.current_key(session, settings)
    return keys.sign(key, claims)


async def bad_tokens(apps, clients) -> dict[str, str]:
    account = await sign_up(clients["identity"])
    header = jwt.get_unverified_header(account.access_token)
    claims = jwt.decode(account.access_token, options={"verify_signature": False})
    jwks = (await clients["identity"].get("/.well-known/jwks.json")).json()
    public_key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"])).key
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input, _, signature = account.access_token.rpartition(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return {
        "alg none": hand_made({"alg": "none", "kid": header["kid"]}, claims, lambda _: ""),
        # The classic confusion attack: HMAC keyed with the (public) RSA key.
        "HS256 keyed with the public key": hand_made(
            {"alg": "HS256", "kid": header["kid"]},
            claims,
            lambda data: b64(hmac.new(public_pem, data, hashlib.sha256).digest()),
        ),
        "bad signature": f"{signing_input}.{flipped}",
        "signed by another key under a known kid": jwt.encode(
            claims, stranger_key, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "unknown kid": jwt.encode(
            claims, stranger_key, algorithm="RS256", headers={"kid": uuid.uuid4().hex}
        ),
        "wrong audience": await signed_by_identity(apps, {**claims, "aud": "another-app"}),
        "wrong issuer": await signed_by_identity(apps, {**claims, "iss": "https://evil.example"}),
        "expired": await signed_by_identity(apps, {**claims, "iat": now - 4000, "exp": now - 3600}),
        "not a JWT": "not-a-jwt",
    }


@pytest.fixture
async def tokens(apps, clients) -> dict[str, str]:
    return await bad_tokens(apps, clients)


async def test_content_refuses_every_kind_of_bad_token_over_graphql(clients, tokens) -> None:
    for kind, token in tokens.items():
        result = await graphql(
            clients["content"], "{ __typename }", headers={"authorization": f"Bearer {token}"}
        )
        assert result.get("data") is None, kind
        assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", kind


async def test_identity_rest_refuses_every_kind_of_bad_token(clients, tokens) -> None:
    for kind, token in tokens.items():
        response = await clients["identity"].get(
            "/api/v1/users/me", headers={"authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, kind
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "UNAUTHENTICATED", kind


async def test_a_genuine_token_is_accepted_by_every_subgraph(clients) -> None:
    account = await sign_up(clients["identity"])
    for name, client in clients.items():
        result = await graphql(client, "{ __typename }", headers=account.headers)
        assert result == {"data": {"__typename": "Query"}}, name


async def test_a_malformed_authorization_header_is_refused(clients) -> None:
    result = await graphql(
        clients["workflow"], "{ __typename }", headers={"authorization": "Basic Zm9vOmJhcg=="}
    )
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
