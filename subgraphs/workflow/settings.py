from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class WorkflowSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_WORKFLOW_", extra="ignore")

    name: ClassVar[str] = "workflow"
    port: int = 8004
    database_name: str = "workflow_intelligence_service"
