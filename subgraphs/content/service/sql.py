"""SQL building blocks the service modules share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY, UUID

_UUIDS = ARRAY(UUID(as_uuid=True))


def any_of_parameter(column: Any, name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`, the ids given as one array when the statement runs, so that
    the statement can be built once and kept (see `documents._readable_documents_by_ids`).

    An IN list is one parameter per id: another statement text, prepared again, for every
    batch size, and a bind step per id. The primary key and foreign key indexes serve both.
    """
    condition: ColumnElement[bool] = column == any_(bindparam(name, type_=_UUIDS))
    return condition
