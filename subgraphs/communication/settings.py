from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class CommunicationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_COMMUNICATION_", extra="ignore")

    name: ClassVar[str] = "communication"
    port: int = 8003
    database_name: str = "communication_service"
