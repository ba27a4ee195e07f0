from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_IDENTITY_", extra="ignore")

    name: ClassVar[str] = "identity"
    port: int = 8001
    database_name: str = "identity_service"
