from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class ContentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_CONTENT_", extra="ignore")

    name: ClassVar[str] = "content"
    port: int = 8002
    database_name: str = "content_service"
