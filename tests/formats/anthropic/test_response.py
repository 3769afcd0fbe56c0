"""Anthropic Messages answers as Chat Completions answers: the golden answer vectors that hold ``outbound``."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.formats.anthropic.response import to_openai_response
from tests.formats.anthropic.golden import CREATED, documents


@pytest.mark.parametrize("vector", documents("answers", "outbound"))
def test_answer_vector(vector: dict[str, Any]) -> None:
    assert to_openai_response(vector["messages"], created=CREATED) == vector["chat"]
