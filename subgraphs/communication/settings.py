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
    # A delivery stored but never handed to the broker (it was unreachable) is queued again
    # by the event consumer's sweep once it has waited this long; the sweep runs this often.
    stranded_after_seconds: float = Field(default=60, gt=0)
    sweep_interval_seconds: float = Field(default=15, gt=0)

    # Webhooks never reach loopback, link-local (cloud metadata), private or reserved
    # addresses, checked when one is set and again before each POST, unless their host is
    # in this comma-separated list (or every private address is allowed): e.g. a local
    # receiver in development and tests.
    webhook_allowed_hosts: str = ""
    webhook_allow_private: bool = False

    # Templates and the event rules (which events become which notifications).
    templates_file: Path = HERE / "templates.yaml"
    rules_file: Path = HERE / "rules.yaml"
    default_locale: str = "en"
    # The consumer group reading the deployment's event stream.
    consumer_group: str = "communication"

    @property
    def webhook_hosts_allowed(self) -> frozenset[str]:
        hosts = (h.strip().lower() for h in self.webhook_allowed_hosts.split(","))
        return frozenset(h for h in hosts if h)
