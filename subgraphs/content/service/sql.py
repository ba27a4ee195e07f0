"""SQL building blocks the service modules share."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY, UUID

_UUID = UUID(as_uuid=True)
_UUIDS = ARRAY(_UUID)


def matches_ids(column: Any, *, single: bool) -> ColumnElement[bool]:
    """`column = ANY(:ids)`, the ids given as one array when the statement runs, so that
    the statement can be built once and kept (see `documents._readable_documents_by_ids`);
    `column = :ids` when the batch is a single id (`ids_parameters` says which).

    An IN list is one parameter per id: another statement text, prepared again, for every
    batch size, and a bind step per id. The primary key and foreign key indexes serve both.
    A single id is asked with an equality because PostgreSQL plans `= ANY(:ids)` again on
    every execution (the generic plan, costed for an array of unknown length, never beats
    a custom one), which more than doubles its CPU for a lookup by primary key (~0.10
    against ~0.04 ms), while an equality runs on the plan it keeps; one id is the common
    batch (`document(id)`, a single entity).
    """
    if single:
        return column == bindparam("ids", type_=_UUID)
    return column == any_(bindparam("ids", type_=_UUIDS))


def ids_parameters(ids: Iterable[uuid.UUID]) -> tuple[bool, dict[str, Any]]:
    """Whether the distinct ids are a single one, and the parameters of a statement built
    with `matches_ids(column, single=...)` for them."""
    distinct = list(set(ids))
    if len(distinct) == 1:
        return True, {"ids": distinct[0]}
    return False, {"ids": distinct}
