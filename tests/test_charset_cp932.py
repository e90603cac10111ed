"""ISO-2022-JP text is given CP932's forms of six characters (〜 → ～, − → －, …) only where it
has one: most mail has none, and translating every character cost ~200 us a body (issue 17).
The text is the same as translating it whole."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailbot.mail.charset import JIS_TO_CP932, _as_cp932, decode_jis

SIX = "".join(map(chr, JIS_TO_CP932))


@given(st.text(alphabet=st.sampled_from(SIX + "あ漢a ①\n") | st.characters(), max_size=60))
def test_the_six_are_mapped_as_translate_maps_them(text: str) -> None:
    assert _as_cp932(text) == text.translate(JIS_TO_CP932)


def test_a_jis_wave_dash_reads_as_cp932_writes_it() -> None:
    text, defects = decode_jis("9:00〜17:00 −5".encode("iso2022_jp"))
    assert (text, defects) == ("9:00～17:00 －5", [])
