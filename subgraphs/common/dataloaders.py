"""Arranging one batched query's rows into what a DataLoader must return: one answer per key."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

M = TypeVar("M")


def ordered(
    keys: Sequence[Hashable], rows: Sequence[M], key: Callable[[M], Hashable]
) -> list[M | None]:
    """Rows arranged to match `keys`, None where a key has no row."""
    by_key = {key(row): row for row in rows}
    return [by_key.get(k) for k in keys]


def grouped(
    keys: Sequence[Hashable], rows: Sequence[M], key: Callable[[M], Hashable]
) -> list[list[M]]:
    """Rows grouped under each of `keys` (order of rows kept), for one-to-many relations."""
    groups: dict[Hashable, list[M]] = {k: [] for k in keys}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [groups[k] for k in keys]
