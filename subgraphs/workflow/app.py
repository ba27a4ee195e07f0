from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.common.events import run_outbox_relay
from subgraphs.workflow import rest
from subgraphs.workflow.graphql import schema
from subgraphs.workflow.models import OutboxEvent
from subgraphs.workflow.service.content import ContentAPI
from subgraphs.workflow.settings import WorkflowSettings


def build(settings: WorkflowSettings | None = None) -> FastAPI:
    settings = settings or WorkflowSettings()
    app = create_app(
        settings=settings,
        schema=schema,
        rest=rest.router,
        title="Hub workflow & intelligence",
        description="Workflow definitions and instances, tasks, timers, triggers and suggestions.",
        background=[relay_outbox],
    )
    # Suggestions read documents from content, as the person asking (service/content.py).
    app.state.content_api = ContentAPI(
        settings.service_urls["content"], timeout=settings.request_timeout_seconds
    )
    return app


async def relay_outbox(app: FastAPI) -> None:
    """Publish the outbox (notifications to send, workflow events) to the event stream."""
    settings = app.state.settings
    await run_outbox_relay(app.state.sessions, OutboxEvent, settings.hub, source="workflow")
