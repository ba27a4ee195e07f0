from subgraphs.common.migrations import run_env
from subgraphs.workflow.models import Base

run_env(Base.metadata)
