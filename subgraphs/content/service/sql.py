"""SQL building blocks the service modules share."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY, UUID

_UUIDS = ARRAY(UUID(as_uuid=True))


def any_of(column: Any, ids: Sequence[uuid.UUID]) -> ColumnElement[bool]:
    """`column = ANY(:ids)`, the ids (once each) as one array parameter.

    An IN list is one parameter per id: another statement text, prepared again, for every
    batch size, and a bind step per id. The primary key and foreign key indexes serve both.
    """
    condition: ColumnElement[bool] = column == any_(
        bindparam("ids", list(set(ids)), type_=_UUIDS, unique=True)
    )
    return condition


def any_of_parameter(column: Any, name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`, the ids given when the statement runs: a statement kept for
    reuse (see `documents._readable_documents_by_ids`)."""
    condition: ColumnElement[bool] = column == any_(bindparam(name, type_=_UUIDS))
    return condition
