"""Login and MFA throttling: per account and per IP, with Retry-After, revealing nothing."""

from __future__ import annotations

from conftest import PASSWORD, client_for, enroll, sign_up, unique_email

from subgraphs.identity import SUBGRAPH


async def failed_login(identity, email: str, headers=None):
    return await identity.post(
        "/api/v1/auth/login",
        json={"email": email, "password": "wrong password here"},
        headers=headers or {},
    )


async def test_an_account_is_locked_after_five_failures_with_retry_after(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    for _ in range(5):
        assert (await failed_login(identity, account.email)).status_code == 401
    locked = await failed_login(identity, account.email)
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= 30
    assert locked.json()["code"] == "TOO_MANY_REQUESTS"
    # Even the right password waits for the lock to pass.
    right = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert right.status_code == 429


async def test_success_resets_the_account_counter(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    for _ in range(4):
        await failed_login(identity, account.email)
    ok = await identity.post(
        "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
    )
    assert ok.status_code == 200
    for _ in range(4):
        assert (await failed_login(identity, account.email)).status_code == 401


async def test_answers_do_not_reveal_whether_the_email_exists(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    known = await failed_login(identity, account.email)
    unknown = await failed_login(identity, unique_email())
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()
    # Unknown emails get locked the same way.
    ghost = unique_email()
    for _ in range(5):
        await failed_login(identity, ghost)
    assert (await failed_login(identity, ghost)).status_code == 429


async def test_one_ip_trying_many_accounts_is_locked() -> None:
    settings = SUBGRAPH.settings_class(ip_failures_before_lock=3)
    app = SUBGRAPH.app(settings)
    try:
        async with client_for(app) as identity:
            # Each test IP gets its own counter; ASGITransport's client address is fixed,
            # so this app instance is the only one counting for it in this test.
            await app.state.redis.client.delete(
                app.state.redis.key("failures", "ip", "127.0.0.1"),
                app.state.redis.key("lock", "ip", "127.0.0.1"),
            )
            statuses = [
                (await failed_login(identity, unique_email())).status_code for _ in range(4)
            ]
    finally:
        await app.state.redis.client.delete(
            app.state.redis.key("failures", "ip", "127.0.0.1"),
            app.state.redis.key("lock", "ip", "127.0.0.1"),
        )
        await app.state.redis.close()
        await app.state.engine.dispose()
    assert statuses == [401, 401, 401, 429]


async def test_mfa_codes_are_throttled_too(clients) -> None:
    identity = clients["identity"]
    account = await sign_up(identity)
    await enroll(identity, account)
    statuses = []
    for _ in range(6):
        login = await identity.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        verify = await identity.post(
            "/api/v1/auth/mfa/verify",
            json={"mfa_token": login.json()["mfa_token"], "code": "123456"},
        )
        statuses.append(verify.status_code)
    assert statuses == [401] * 5 + [429]
