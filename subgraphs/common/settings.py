"""Configuration read from the environment.

Two layers: `HubSettings` (prefix `HUB_`) holds what every process of a deployment
shares — where PostgreSQL and Redis are, development or production. Each subgraph
subclasses `ServiceSettings` with its own prefix (`HUB_IDENTITY_`, ...) for what is
its own: port, database name, Redis namespace. A service-level URL, when set,
wins over the shared one, so one service can be moved to its own server.
"""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    env: Literal["development", "production"] = "development"
    postgres_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432",
        description="PostgreSQL server (no database name); each service adds its own database.",
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    log_level: str = "INFO"

    # Access tokens are issued by identity and verified by every service against its JWKS.
    jwt_issuer: str = "hub-identity"
    jwt_audience: str = "hub"
    jwks_url: str = Field(
        default="http://127.0.0.1:8001/.well-known/jwks.json",
        description="Where services fetch identity's public keys.",
    )
    jwks_cache_seconds: int = 300

    # Domain events between services (subgraphs/common/events.py): one stream per deployment.
    events_stream: str = "hub:events"
    events_redis_url: str | None = Field(
        default=None, description="Redis holding the event stream; default HUB_REDIS_URL."
    )

    compiled_queries: bool = Field(
        default=True,
        description="Answer plain queries from compiled plans (common/compiled.py).",
    )
    gc_tuning: bool = Field(
        default=True,
        description="Freeze the startup heap and collect garbage less often (common/subgraph.py).",
    )
    # Off by default: the timing runs Python code inside each collection, and CPython 3.11's
    # ast.parse fails ("AST constructor recursion depth mismatch") if a collection with such
    # a callback interrupts it; the bench turns it on.
    gc_pause_metric: bool = Field(
        default=False, description="Time garbage collections (hub_gc_pause_seconds)."
    )

    @property
    def is_production(self) -> bool:
        return self.env == "production"


class ServiceSettings(BaseSettings):
    """What one subgraph reads; subclasses fix `name`, the env prefix and defaults."""

    model_config = SettingsConfigDict(extra="ignore")

    name: ClassVar[str]

    host: str = "127.0.0.1"
    port: int
    database_name: str
    database_url: str | None = Field(
        default=None, description="Full URL of this service's database; overrides HUB_POSTGRES_URL."
    )
    redis_url: str | None = Field(default=None, description="Overrides HUB_REDIS_URL.")
    redis_namespace: str | None = Field(
        default=None, description="Prefix of every Redis key and channel; default `hub:<service>`."
    )
    db_pool_size: int = Field(
        default=10, ge=1, description="Database connections a process keeps open (once opened)."
    )
    db_pool_overflow: int = Field(
        default=10,
        ge=0,
        description="Connections opened beyond db_pool_size while requests need them; each is "
        "closed once a whole db_pool_idle_seconds passes without a moment that needed it.",
    )
    db_pool_idle_seconds: float = Field(default=30.0, gt=0)

    @cached_property
    def hub(self) -> HubSettings:
        return HubSettings()

    @property
    def database_dsn(self) -> str:
        """SQLAlchemy URL (asyncpg driver) of this service's database."""
        url = self.database_url or f"{self.hub.postgres_url.rstrip('/')}/{self.database_name}"
        return to_asyncpg_url(url)

    @property
    def redis_dsn(self) -> str:
        return self.redis_url or self.hub.redis_url

    @property
    def key_prefix(self) -> str:
        return (self.redis_namespace or f"hub:{self.name}").rstrip(":") + ":"


def to_asyncpg_url(url: str) -> str:
    for scheme in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+asyncpg://" + url[len(scheme) :]
    raise ValueError(f"not a PostgreSQL URL: {url!r}")
