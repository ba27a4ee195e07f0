"""TOTP multi-factor authentication and recovery codes."""

from __future__ import annotations

from conftest import PASSWORD, code_at, enroll, graphql, sign_up

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
    __typename ... on MfaChallenge { mfaToken expiresIn } ... on TokenPair { accessToken } } }"""
VERIFY = """mutation($t: String!, $c: String!) { verifyMfa(mfaToken: $t, code: $c) {
    accessToken refreshToken } }"""


async def test_mfa_is_on_only_after_a_valid_code_confirms_it(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    setup = await identity.post("/api/v1/auth/mfa/setup", headers=account.headers)
    secret = setup.json()["secret"]
    assert secret in setup.json()["otpauth_uri"] and "Hub" in setup.json()["otpauth_uri"]

    wrong = await identity.post(
        "/api/v1/auth/mfa/confirm", json={"code": "000000"}, headers=account.headers
    )
    assert wrong.status_code == 422
    me = await identity.get("/api/v1/users/me", headers=account.headers)
    assert me.json()["mfa_enabled"] is False
    login = await graphql(identity, LOGIN, {"e": account.email, "p": PASSWORD})
    assert login["data"]["login"]["__typename"] == "TokenPair"

    confirm = await identity.post(
        "/api/v1/auth/mfa/confirm", json={"code": code_at(secret, 0)}, headers=account.headers
    )
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    me = await identity.get("/api/v1/users/me", headers=account.headers)
    assert me.json()["mfa_enabled"] is True


async def test_login_with_mfa_needs_a_code_and_a_totp_code_works_only_once(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    secret, _ = await enroll(identity, account)

    rest = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert rest.json()["mfa_required"] is True and "access_token" not in rest.json()

    challenge = (await graphql(identity, LOGIN, {"e": account.email, "p": PASSWORD}))["data"]
    token = challenge["login"]["mfaToken"]
    code = code_at(secret, 0)
    tokens = await graphql(identity, VERIFY, {"t": token, "c": code})
    assert tokens["data"]["verifyMfa"]["accessToken"]

    # The same code again, with a fresh challenge: a replay.
    again = (await graphql(identity, LOGIN, {"e": account.email, "p": PASSWORD}))["data"]
    replay = await graphql(identity, VERIFY, {"t": again["login"]["mfaToken"], "c": code})
    assert replay["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # An older code (the step before the accepted one) is no better.
    older = await graphql(
        identity, VERIFY, {"t": again["login"]["mfaToken"], "c": code_at(secret, -1)}
    )
    assert older["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The challenge token itself is single use too.
    reuse = await graphql(identity, VERIFY, {"t": token, "c": code_at(secret, 1)})
    assert reuse["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_recovery_codes_are_single_use_and_regenerating_voids_the_old_ones(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    secret, codes = await enroll(identity, account)

    async def verify_with(code: str) -> int:
        login = await identity.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        verify = await identity.post(
            "/api/v1/auth/mfa/verify", json={"mfa_token": login.json()["mfa_token"], "code": code}
        )
        return verify.status_code

    assert await verify_with(codes[0].upper()) == 200  # case and dashes do not matter
    assert await verify_with(codes[0]) == 401

    regenerated = await identity.post(
        "/api/v1/auth/mfa/recovery-codes",
        json={"code": code_at(secret, 0)},
        headers=account.headers,
    )
    assert regenerated.status_code == 200
    fresh = regenerated.json()["recovery_codes"]
    assert await verify_with(codes[1]) == 401
    assert await verify_with(fresh[0]) == 200


async def test_disabling_mfa_needs_a_current_code_or_the_password(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    await enroll(identity, account)
    refused = await identity.post(
        "/api/v1/auth/mfa/disable", json={"password": "not the password"}, headers=account.headers
    )
    assert refused.status_code == 422
    nothing = await identity.post("/api/v1/auth/mfa/disable", json={}, headers=account.headers)
    assert nothing.status_code == 422
    disabled = await identity.post(
        "/api/v1/auth/mfa/disable", json={"password": PASSWORD}, headers=account.headers
    )
    assert disabled.status_code == 204
    login = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert "access_token" in login.json()
