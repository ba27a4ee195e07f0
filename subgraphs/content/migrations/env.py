from subgraphs.common.migrations import run_env
from subgraphs.content.models import Base

run_env(Base.metadata)
