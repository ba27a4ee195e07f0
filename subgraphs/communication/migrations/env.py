from subgraphs.common.migrations import run_env
from subgraphs.communication.models import Base

run_env(Base.metadata)
