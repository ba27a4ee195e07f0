from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.common.events import run_outbox_relay
from subgraphs.content import rest
from subgraphs.content.graphql import schema
from subgraphs.content.models import OutboxEvent
from subgraphs.content.settings import ContentSettings


def build(settings: ContentSettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or ContentSettings(),
        schema=schema,
        rest=rest.router,
        title="Hub content",
        description="Documents, versions and files, tags and metadata, sharing, search and audit.",
        background=[relay_outbox],
    )


async def relay_outbox(app: FastAPI) -> None:
    """Publish the outbox (shares, new versions...) to the deployment's event stream."""
    settings = app.state.settings
    await run_outbox_relay(app.state.sessions, OutboxEvent, settings.hub, source="content")
