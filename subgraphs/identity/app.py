from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.common.auth import REVOCATION_MARGIN_SECONDS, TokenVerifier
from subgraphs.common.events import run_outbox_relay
from subgraphs.identity import keys, rest
from subgraphs.identity.graphql import schema
from subgraphs.identity.models import OutboxEvent
from subgraphs.identity.settings import IdentitySettings


def build(settings: IdentitySettings | None = None) -> FastAPI:
    settings = settings or IdentitySettings()
    app = create_app(
        settings=settings,
        schema=schema,
        rest=rest.router,
        title="Hub identity",
        description="Users, credentials, roles, organizations, MFA, sessions and tokens.",
        background=[relay_outbox],
    )
    app.include_router(rest.well_known)

    # Identity verifies its own tokens from its own key table, not over HTTP.
    async def own_keys() -> dict:
        async with app.state.sessions() as session:
            return await keys.jwks(session, settings)

    # Identity records revoked sessions (services/sessions.py) for as long as one of their
    # access tokens could still be presented.
    app.state.revocations.remember_seconds = (
        settings.access_token_seconds + REVOCATION_MARGIN_SECONDS
    )
    app.state.verifier = TokenVerifier(
        own_keys,
        issuer=settings.hub.jwt_issuer,
        audience=settings.hub.jwt_audience,
        cache_seconds=settings.hub.jwks_cache_seconds,
        revocations=app.state.revocations,
    )
    return app


async def relay_outbox(app: FastAPI) -> None:
    """Publish the outbox (emails to send, security alerts) to the deployment's event stream."""
    settings = app.state.settings
    await run_outbox_relay(app.state.sessions, OutboxEvent, settings.hub, source="identity")
