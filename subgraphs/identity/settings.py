from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_IDENTITY_", extra="ignore")

    name: ClassVar[str] = "identity"
    port: int = 8001
    database_name: str = "identity_service"

    access_token_seconds: int = 900
    refresh_token_days: int = 30
    mfa_challenge_seconds: int = 300
    email_verification_hours: int = 48
    password_reset_minutes: int = 60
    signing_key_rotation_days: int = Field(
        default=30, description="A new signing key is made when the current one is this old."
    )
    roles_file: Path | None = Field(
        default=None,
        description="YAML file of the deployment's roles (e.g. buyer/supplier, doctor/nurse).",
    )
    login_failures_before_lock: int = 5
    lock_seconds: int = Field(default=30, description="First lock; it doubles per failure.")
    max_lock_seconds: int = 900
    ip_failures_before_lock: int = 50
