from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from subgraphs.common.settings import ServiceSettings

MiB = 1024 * 1024

# What may be uploaded unless HUB_CONTENT_ALLOWED_MEDIA_TYPES says otherwise: the formats
# documents arrive in (office files, PDF, text, images), never executables or archives.
DEFAULT_MEDIA_TYPES = (
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/html",
    "text/csv",
    "application/json",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "image/png",
    "image/jpeg",
    "image/tiff",
)


class ContentSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_CONTENT_", extra="ignore")

    name: ClassVar[str] = "content"
    port: int = 8002
    database_name: str = "content_service"

    document_types_file: Path | None = Field(
        default=None,
        description="YAML file of the deployment's document types and their metadata schemas.",
    )
    storage_backend: str = Field(default="local", description="Where file versions are kept.")
    storage_path: Path = Field(
        default=Path(".data/content-files"),
        description="Directory of the local storage backend (created if missing).",
    )
    # At most 2 GiB - 1: sizes are GraphQL Ints (32-bit).
    max_upload_bytes: int = Field(default=100 * MiB, ge=1, le=2**31 - 1)
    allowed_media_types: Annotated[tuple[str, ...], NoDecode] = DEFAULT_MEDIA_TYPES
    search_language: str = Field(
        default="english", description="PostgreSQL text search configuration (regconfig)."
    )
    search_cache_seconds: int = Field(default=60, ge=0)
    extract_max_bytes: int = Field(
        default=50 * MiB, description="Files larger than this are stored but not text-indexed."
    )
    max_indexed_chars: int = Field(
        default=200_000, description="Body text beyond this many characters is not indexed."
    )

    @field_validator("allowed_media_types", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return value

    @field_validator("search_language")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("search_language must name a text search configuration")
        return value
