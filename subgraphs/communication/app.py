from fastapi import FastAPI

from subgraphs.common.app import create_app
from subgraphs.communication import rest
from subgraphs.communication.graphql import schema
from subgraphs.communication.settings import CommunicationSettings


def build(settings: CommunicationSettings | None = None) -> FastAPI:
    return create_app(
        settings=settings or CommunicationSettings(),
        schema=schema,
        rest=rest.router,
        title="Hub communication",
        description="Notifications, templates, preferences and messaging, delivered by Celery.",
    )
