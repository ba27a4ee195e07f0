from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.common.events import run_outbox_relay
from subgraphs.workflow import rest
from subgraphs.workflow.graphql import schema
from subgraphs.workflow.models import OutboxEvent
from subgraphs.workflow.settings import WorkflowSettings


def build(settings: WorkflowSettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or WorkflowSettings(),
        schema=schema,
        rest=rest.router,
        title="Hub workflow & intelligence",
        description="Workflow definitions and instances, tasks, timers, triggers and suggestions.",
        background=[relay_outbox],
    )


async def relay_outbox(app: FastAPI) -> None:
    """Publish the outbox (notifications to send, workflow events) to the event stream."""
    settings = app.state.settings
    await run_outbox_relay(app.state.sessions, OutboxEvent, settings.hub, source="workflow")
