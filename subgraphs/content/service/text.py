"""Rules for the text users send."""

from __future__ import annotations

from subgraphs.common.errors import BadInput


def storable_text(value: str, *, field: str) -> str:
    """`value` unchanged, or BadInput naming the field when PostgreSQL could not store it.

    A NUL character (U+0000) is valid in JSON and GraphQL strings, not in PostgreSQL text.
    """
    if "\x00" in value:
        raise BadInput(f"{field} must not contain NUL characters", field=field)
    return value
