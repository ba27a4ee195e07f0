"""What content's service functions need besides a session: built once per process."""

from __future__ import annotations

from dataclasses import dataclass

from subgraphs.common.redis import Namespace
from subgraphs.content.document_types import DocumentType, document_types_from
from subgraphs.content.settings import ContentSettings
from subgraphs.content.storage import Storage, storage_for


@dataclass(frozen=True)
class Resources:
    settings: ContentSettings
    redis: Namespace
    storage: Storage

    @classmethod
    def of(cls, settings: ContentSettings, redis: Namespace) -> Resources:
        return cls(settings, redis, storage_for(settings.storage_backend, settings.storage_path))

    @property
    def document_types(self) -> dict[str, DocumentType]:
        return document_types_from(self.settings.document_types_file)
