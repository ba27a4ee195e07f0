"""JSON read back from PostgreSQL (subgraphs/common/database.py): orjson where it reads a
value as json.loads would, json.loads where it would not."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from sqlalchemy import select

from subgraphs.common.database import load_json
from subgraphs.common.reads import fetch_rows
from subgraphs.content.models import Document

VALUES = [
    "{}",
    "[]",
    '{"n": 1, "x": null, "nested": {"list": [1, 2.5, "three", true, false]}}',
    '{"ünïcode": "✓ \\u00e9 \\ud83d\\ude00"}',
    '{"nul": "a\\u0000b"}',
    "9223372036854775807",  # the largest 64-bit integer
    "-9223372036854775808",
    "18446744073709551616",  # past 64 bits
    '{"big": 123456789012345678901234567890, "negative": -98765432109876543210}',
    '{"id": "1234567890123456789012"}',  # long digits in a string
    "1.7976931348623157e308",
    "[1e400, -1e400]",  # past a double: infinities, as json.loads reads them
    "0.1",
    "-0",
]


@pytest.mark.parametrize("text", VALUES)
def test_reads_every_value_as_json_loads_does(text: str) -> None:
    expected = json.loads(text)
    read = load_json(text)
    assert read == expected or (isinstance(expected, list) and all(math.isinf(x) for x in expected))
    assert type(read) is type(expected)
    assert json.dumps(read) == json.dumps(expected)


async def test_metadata_with_integers_past_64_bits_reads_back_exactly(apps) -> None:
    metadata = {"big": 2**70 + 1, "small": -(2**65), "text": "ü", "float": 0.1}
    async with apps["content"].state.sessions() as session:
        document = Document(title="numbers", owner_id=uuid.uuid4(), attributes=metadata)
        session.add(document)
        await session.commit()
        document_id = document.id
    stmt = select(Document.attributes).where(Document.id == document_id)
    async with apps["content"].state.readers() as reader:
        (on_the_driver,) = await fetch_rows(reader, stmt)
    async with apps["content"].state.sessions() as session:
        through_the_session = (await session.execute(stmt)).one()
    assert on_the_driver.attributes == through_the_session.attributes == metadata
