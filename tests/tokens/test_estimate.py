"""The estimate for models without a shipped tokenizer (``proxy/tokens/estimate.py``)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.tokens.estimate import estimate_tokens, utf8_length

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=500)


def test_ascii_text_is_a_token_per_three_bytes_rounded_up() -> None:
    assert [estimate_tokens("a" * n) for n in (0, 1, 2, 3, 4, 6, 7)] == [0, 1, 1, 1, 2, 2, 3]


def test_cjk_counts_about_a_token_a_character() -> None:
    text = "東京都の天気は晴れです"  # 11 characters, 3 bytes each
    assert estimate_tokens(text) == 11


@settings(max_examples=300, deadline=None, database=None)
@given(text=TEXT)
def test_the_estimate_never_exceeds_the_bytes_and_is_a_third_of_them(text: str) -> None:
    size = len(text.encode("utf-8"))
    assert utf8_length(text) == size
    assert estimate_tokens(text) <= size
    assert 3 * estimate_tokens(text) - 2 <= size <= 3 * estimate_tokens(text)
