"""The four subgraphs, for tools that handle all of them (migrate, export the schema, tests).

Only tooling imports this; the subgraphs themselves never import one another.
"""

from subgraphs.common.subgraph import Subgraph
from subgraphs.communication import SUBGRAPH as COMMUNICATION
from subgraphs.content import SUBGRAPH as CONTENT
from subgraphs.identity import SUBGRAPH as IDENTITY
from subgraphs.workflow import SUBGRAPH as WORKFLOW

SUBGRAPHS: list[Subgraph] = [IDENTITY, CONTENT, COMMUNICATION, WORKFLOW]
