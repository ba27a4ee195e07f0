from subgraphs.common.app import create_app
from subgraphs.workflow import rest
from subgraphs.workflow.graphql import schema
from subgraphs.workflow.settings import WorkflowSettings

app = create_app(
    settings=WorkflowSettings(),
    schema=schema,
    rest=rest.router,
    title="Hub workflow & intelligence",
    description="Workflow definitions and instances, tasks, timers, triggers and suggestions.",
)
