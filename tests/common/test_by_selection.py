"""What a resolver works out from the names it selects (`BySelection` in
subgraphs/common/graphql.py) is worked out once per field of a parsed document, and is
always what the selection of the request at hand says."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import ParserCache
from strawberry.types.nodes import SelectedField

from subgraphs.common.graphql import BySelection

computed: list[frozenset[str]] = []


def _names(fields: list[Any]) -> frozenset[str]:
    names: set[str] = set()

    def walk(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, SelectedField):
                names.add(item.name)
            walk(item.selections)

    for field in fields:
        walk(field.selections)
    computed.append(frozenset(names))
    return frozenset(names)


names_selected = BySelection(_names, kept=2)


@strawberry.type
class Thing:
    seen: list[str]  # what `names_selected` said for the field that returned it
    a: str = "a"
    b: str = "b"

    @strawberry.field
    def c(self, n: int = 1) -> str:
        return "c" * n


@strawberry.type
class Query:
    @strawberry.field
    def things(self, info: strawberry.Info) -> Thing:
        return Thing(seen=sorted(names_selected(info) - {"seen"}))


SCHEMA = strawberry.Schema(query=Query, extensions=[lambda: ParserCache(maxsize=16)])


async def _names_for(query: str, variables: dict[str, Any] | None = None) -> list[str]:
    result = await SCHEMA.execute(query, variable_values=variables)
    assert result.errors is None and result.data is not None
    names: list[str] = result.data["things"]["seen"]
    return names


async def test_a_document_run_again_is_not_worked_out_again() -> None:
    computed.clear()
    query = "query($n: Int) { things { seen a c(n: $n) } }"
    assert await _names_for(query, {"n": 1}) == ["a", "c"]
    assert await _names_for(query, {"n": 3}) == ["a", "c"]  # other values, same names
    assert len(computed) == 1


async def test_each_document_gets_what_its_own_selection_names() -> None:
    computed.clear()
    assert await _names_for("{ things { seen a } }") == ["a"]
    assert await _names_for("{ things { seen b ...F } } fragment F on Thing { c }") == ["b", "c"]
    # Two fields: each is worked out for both, as `selected_fields` lists both.
    result = await SCHEMA.execute("{ x: things { seen a } things { seen b } }")
    assert result.data == {"x": {"seen": ["a"], "a": "a"}, "things": {"seen": ["b"], "b": "b"}}
    assert await _names_for("{ things { seen a b } }") == ["a", "b"]
    assert await _names_for("{ things { seen a } }") == ["a"]  # kept=2: worked out again
    assert len(computed) == 6


async def test_skip_and_include_do_not_change_what_is_listed() -> None:
    """`selected_fields` lists a field whatever its @skip/@include say, so an entry worked
    out for one value of a variable holds for the other."""
    query = "query($s: Boolean!) { things { seen a b @skip(if: $s) } }"
    assert await _names_for(query, {"s": True}) == ["a", "b"]
    assert await _names_for(query, {"s": False}) == ["a", "b"]
