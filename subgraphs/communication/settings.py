from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from subgraphs.common.settings import ServiceSettings

HERE = Path(__file__).resolve().parent


class CommunicationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_COMMUNICATION_", extra="ignore")

    name: ClassVar[str] = "communication"
    port: int = 8003
    database_name: str = "communication_service"

    # Email over SMTP.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Hub <no-reply@hub.localhost>"
    # Where links in messages point (a frontend), e.g. the email verification page.
    app_url: str = "http://localhost:3000"

    # Delivery by the Celery worker: attempts, then the dead-letter list.
    max_attempts: int = Field(default=5, ge=1)
    retry_base_seconds: float = Field(default=10, gt=0)
    retry_max_seconds: float = Field(default=3600, gt=0)
    send_timeout_seconds: float = Field(default=10, gt=0)
    # How long an unacknowledged task stays with a worker that may have died before the
    # broker hands it to another; longer than any send and any retry countdown.
    task_visibility_timeout: int = Field(default=3600, ge=1)

    # Templates and the event rules (which events become which notifications).
    templates_file: Path = HERE / "templates.yaml"
    rules_file: Path = HERE / "rules.yaml"
    default_locale: str = "en"
    # The consumer group reading the deployment's event stream.
    consumer_group: str = "communication"
