"""Communication: notifications, templates, preferences and messaging, delivered by Celery."""

from subgraphs.common.subgraph import Subgraph
from subgraphs.communication.settings import CommunicationSettings

SUBGRAPH = Subgraph(name="communication", settings_class=CommunicationSettings, package=__name__)
