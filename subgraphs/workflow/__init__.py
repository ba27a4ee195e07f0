"""Workflow & intelligence: definitions, instances, tasks, timers, triggers, suggestions."""

from subgraphs.common.subgraph import Subgraph
from subgraphs.workflow.settings import WorkflowSettings

SUBGRAPH = Subgraph(name="workflow", settings_class=WorkflowSettings, package=__name__)
