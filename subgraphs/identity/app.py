from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.identity import rest
from subgraphs.identity.graphql import schema
from subgraphs.identity.settings import IdentitySettings


def build(settings: IdentitySettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or IdentitySettings(),
        schema=schema,
        rest=rest.router,
        title="Hub identity",
        description="Users, credentials, roles, organizations, MFA, sessions and tokens.",
    )
