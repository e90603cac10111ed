"""`single_line` (a value made safe for a header) skips its per-character pass when the text
has no control, format, private-use or unassigned character (`str.isprintable`): the answer
is the per-character pass's on any text (issue 17)."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from mailbot.text import _SPACE, single_line


def per_character(text: str, limit: int) -> str:
    cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    return _SPACE.sub(" ", cleaned).strip()[:limit]


TRICKY = (
    "\r\n\t\x00\x7f\x85\u00ad\u200b\u200d\u2028\u2029\u3000\ufeff\ue000\U000e0001\U0010ffff 髙①"
)


@given(st.text(alphabet=st.sampled_from(TRICKY) | st.characters(), max_size=40), st.integers(0, 50))
def test_single_line_is_the_per_character_answer(text: str, limit: int) -> None:
    assert single_line(text, limit) == per_character(text, limit)


def test_a_subject_with_a_line_break_and_a_zero_width_space() -> None:
    assert single_line("受付\r\n番号\u200bです　髙橋") == "受付 番号 です 髙橋"
