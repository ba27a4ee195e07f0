from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class WorkflowSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_WORKFLOW_", extra="ignore")

    name: ClassVar[str] = "workflow"
    port: int = 8004
    database_name: str = "workflow_intelligence_service"

    scheduler_poll_seconds: float = Field(
        default=0.5, description="How often an idle scheduler looks for due timers and requests."
    )
    consumer_group: str = Field(
        default="workflow", description="Consumer group reading the domain-event stream."
    )
    service_urls: dict[str, str] = Field(
        default={
            "identity": "http://127.0.0.1:8001",
            "content": "http://127.0.0.1:8002",
            "communication": "http://127.0.0.1:8003",
        },
        description="Where the `request` actions of definitions reach each service (JSON).",
    )
    request_timeout_seconds: float = 10
    intelligence_provider: str = Field(
        default="local",
        description="What computes suggestions (intelligence/providers.py); `local`: offline.",
    )
