"""The golden vector set itself: every vector is well formed, says what it checks and is in the README."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.formats.anthropic.golden import GOLDEN

README = (GOLDEN / "README.md").read_text()
FILES = sorted([*GOLDEN.glob("requests/*.json"), *GOLDEN.glob("answers/*.json"),
                *GOLDEN.glob("streams/*/vector.json")])


def name_of(path: Path) -> str:
    return path.parent.name if path.name == "vector.json" else path.stem


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{name_of(p)}" for p in FILES])
def test_a_vector_is_described_and_documented(path: Path) -> None:
    vector = orjson.loads(path.read_bytes())
    assert vector["description"].strip()
    assert vector["directions"] and set(vector["directions"]) <= {"inbound", "outbound"}
    assert f"`{name_of(path)}`" in README, f"{name_of(path)} is missing from the golden README"


def test_every_stream_vector_has_both_sides() -> None:
    for folder in (GOLDEN / "streams").iterdir():
        assert {p.name for p in folder.iterdir()} == {"vector.json", "chat.sse", "messages.sse"}, folder.name


def test_the_refusal_count_in_the_readme_is_right() -> None:
    count = len(orjson.loads((GOLDEN / "refusals.json").read_bytes()))
    assert f"{count} Messages requests" in README
