"""ISO-2022-JP goes through the WHATWG decoder (encoding_rs) first and the older stdlib/bytewise
way only for what it refuses; these tests hold the two to one answer, so the faster way changes
no text a participant sent."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailbot.mail import charset
from mailbot.mail.charset import (
    _jis_pair_to_sjis,
    _jis_run_to_sjis,
    decode_jis,
    decode_jis_bytewise,
    decode_jis_stdlib,
)
from tests.support.jis_oracle import decode_jis_bytewise_oracle
from tests.support.jpmail import encode_jis

ESCAPES = [b"\x1b(B", b"\x1b(J", b"\x1b(I", b"\x1b$B", b"\x1b$@", b"\x1b$(D", b"\x1b$(Q", b"\x1b&@"]
JIS_BYTE = st.integers(0x21, 0x7E)
TOKENS = st.one_of(
    st.sampled_from(ESCAPES),
    st.tuples(st.sampled_from([0x2D, 0x30, 0x46, 0x79, 0x7C, 0x7E]), JIS_BYTE).map(bytes),
    st.tuples(JIS_BYTE, JIS_BYTE).map(bytes),
    st.sampled_from([b"a", b"\\", b"~", b" ", b"\r\n", b"\n", b"\x0e", b"\x0f", b"\x00", b"\x1b"]),
    st.binary(min_size=1, max_size=2),
)
JIS_BYTES = st.lists(TOKENS, max_size=24).map(b"".join)


@settings(max_examples=3000)
@given(JIS_BYTES)
@example(b"\x1b$B-!\x1b(B")
@example(b"\x1b$B\x1b(Babc")
@example(b"\x1b$B0!\n0!\x1b(B")
@example(b"\x1b(J\\~\x1b(B")
@example(b"\x1b(I1\x1b(B")
@example(b"\x1b$(Q-!\x1b(B")
@example(b"\xef\xbb\xbfabc")
@example(b"\xff\xfea\x00")
def test_the_whatwg_way_and_the_older_way_read_any_bytes_alike(data: bytes) -> None:
    assert decode_jis(data) == decode_jis_stdlib(data)


def test_every_code_point_reads_alike_both_ways() -> None:
    for j1 in range(0x21, 0x7F):
        for j2 in range(0x21, 0x7F):
            raw = b"\x1b$B" + bytes((j1, j2)) + b"\x1b(B"
            assert decode_jis(raw) == decode_jis_stdlib(raw), raw


def test_outlook_extension_text_never_takes_the_older_way(monkeypatch) -> None:
    """The point of the change: ①, ㈱, Ⅲ and 髙 are read by the compiled decoder, not by a
    Python callback per character (issue 17: extensions no slower than plain JIS)."""
    taken: list[bytes] = []
    monkeypatch.setattr(charset, "decode_jis_stdlib", lambda data: taken.append(data))
    text = "㈱髙橋電力\n代表取締役　髙橋太郎　様\n①事業者コード申請書\n第Ⅲ期 〜 −5\n"
    assert decode_jis(encode_jis(text)) == (text.replace("〜", "～").replace("−", "－"), [])
    assert taken == []


def test_jis_roman_is_read_as_ascii_as_before() -> None:
    """WHATWG reads ESC ( J 0x5C/0x7E as ¥ and ‾; a desk that has read them as \\ and ~ keeps
    doing so (the older way is taken for such text)."""
    assert decode_jis(b"\x1b(Jc:\\dir~1\x1b(B") == ("c:\\dir~1", [])


def test_damaged_runs_still_come_out_as_before() -> None:
    text, defects = decode_jis(b"\x1b$B0!\x0e\x1b(Bok")
    assert (text, defects) == decode_jis_stdlib(b"\x1b$B0!\x0e\x1b(Bok")
    assert "ok" in text
    assert (text, defects) == ("亜\x0eok", [])  # the stdlib codec keeps SO as a control


@settings(max_examples=3000)
@given(JIS_BYTES)
@example(b"\x1b$B!\x80!\x1b(B")
@example(b"\x1b$(D!\x1b(Babc\n")
@example(b"\x1b$B\x0e!`\n!\x0f!!\x1b(B")
@example(b"\x1b$(D\x0e!`a\x0fab\x1b")
def test_the_run_reader_reads_as_the_byte_by_byte_reader_did(data: bytes) -> None:
    assert decode_jis_bytewise(data) == decode_jis_bytewise_oracle(data)


def test_pairs_transcode_alike_one_at_a_time_and_as_a_run() -> None:
    run = bytes(b for j1 in range(0x21, 0x7F) for j2 in range(0x21, 0x7F) for b in (j1, j2))
    assert bytes(_jis_run_to_sjis(run)) == b"".join(
        _jis_pair_to_sjis(run[k], run[k + 1]) for k in range(0, len(run), 2)
    )


def test_long_damaged_text_reads_as_before_in_pieces() -> None:
    """More than the 4,096 pieces after which the reader joins what it has."""
    data = (
        b"".join(
            b"\x1b$B" + bytes((0x30 + k % 40, 0x21 + k % 90)) + b"\x1b(B" + b"\x80a\n"
            for k in range(6000)
        )
        + b"\x0e"
    )
    assert decode_jis_bytewise(data) == decode_jis_bytewise_oracle(data)
    assert decode_jis(data) == decode_jis_bytewise_oracle(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x1b$B0!" + random.Random(3).randbytes(1 << 20),
        b"\x1b(I" + b"!\x1b" * (1 << 19),
        b"\x1b$B" + b"!!\x80" * (1 << 18),
    ],
    ids=["8-bit after ESC $ B", "kana and stray ESC", "pair then broken byte"],
)
def test_damaged_text_takes_memory_in_proportion_to_the_text(data: bytes) -> None:
    """Read a byte at a time, 1 MB of such text took over 50 MB (a string and a list entry per
    byte; 1.2 GB for 20 MB of 8-bit bytes). The peak now stays within a few copies of the text
    (UCS-2, as U+FFFD and kana need), measured by tracemalloc, not by a clock."""
    tracemalloc.start()
    try:
        text, defects = decode_jis_bytewise(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (text, defects) == decode_jis_bytewise_oracle(data)
    assert peak < 8 * 2 * len(text)
