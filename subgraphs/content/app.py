from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.content import rest
from subgraphs.content.graphql import schema
from subgraphs.content.settings import ContentSettings


def build(settings: ContentSettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or ContentSettings(),
        schema=schema,
        rest=rest.router,
        title="Hub content",
        description="Documents, versions and files, tags and metadata, sharing, search and audit.",
    )
