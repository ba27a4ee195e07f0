from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.workflow import rest
from subgraphs.workflow.graphql import schema
from subgraphs.workflow.settings import WorkflowSettings


def build(settings: WorkflowSettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or WorkflowSettings(),
        schema=schema,
        rest=rest.router,
        title="Hub workflow & intelligence",
        description="Workflow definitions and instances, tasks, timers, triggers and suggestions.",
    )
