from subgraphs.common.app import create_app
from subgraphs.communication import rest
from subgraphs.communication.graphql import schema
from subgraphs.communication.settings import CommunicationSettings

app = create_app(
    settings=CommunicationSettings(),
    schema=schema,
    rest=rest.router,
    title="Hub communication",
    description="Notifications, templates, preferences and messaging, delivered by Celery.",
)
