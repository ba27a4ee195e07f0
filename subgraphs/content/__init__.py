"""Content: documents, versions and files, tags and metadata, sharing, search, audit."""

from subgraphs.common.subgraph import Subgraph
from subgraphs.content.settings import ContentSettings

SUBGRAPH = Subgraph(name="content", settings_class=ContentSettings, package=__name__)
