"""Document types: configuration, not data.

A deployment names its types in a YAML file (HUB_CONTENT_DOCUMENT_TYPES_FILE; see
document_types/procurement.yaml and clinic.yaml), each with a JSON Schema that the
document's metadata must satisfy. `general` always exists, accepting any metadata object,
so that a document can be created with nothing but a title.

    types:
      rc:
        label: Règlement de la consultation
        metadata_schema:
          type: object
          required: [procedure]
          properties: {procedure: {enum: [open, restricted]}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

DEFAULT_TYPE = "general"
KEY = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class DocumentTypesError(ValueError):
    pass


@dataclass(frozen=True)
class DocumentType:
    key: str
    label: str
    description: str = ""
    metadata_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})

    validator: Draft202012Validator = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "validator",
            Draft202012Validator(
                self.metadata_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            ),
        )


GENERAL = DocumentType(DEFAULT_TYPE, "Document", "A document of no particular kind.")


def load_document_types(path: Path | None) -> dict[str, DocumentType]:
    types = {DEFAULT_TYPE: GENERAL}
    if path is None:
        return types
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise DocumentTypesError(f"cannot read document types from {path}: {error}") from None
    entries = raw.get("types") if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise DocumentTypesError(f"{path}: expected a mapping under `types:`")
    for key, spec in entries.items():
        if not isinstance(key, str) or not KEY.match(key):
            raise DocumentTypesError(f"{path}: {key!r} is not a valid type key")
        spec = spec or {}
        schema = spec.get("metadata_schema", {"type": "object"})
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise DocumentTypesError(f"{path}: type {key}: {error.message}") from None
        if schema.get("type") != "object":
            raise DocumentTypesError(f"{path}: type {key}: metadata_schema must be an object")
        types[key] = DocumentType(
            key=key,
            label=str(spec.get("label") or key),
            description=str(spec.get("description") or ""),
            metadata_schema=schema,
        )
    return types


@cache
def document_types_from(path: Path | None) -> dict[str, DocumentType]:
    return load_document_types(path)
