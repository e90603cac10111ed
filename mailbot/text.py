"""Text normalisation for matching: NFKC, bracket and whitespace folding, reply prefixes.

Only for comparing; what is stored and quoted back to a participant is the text as sent.
"""

from __future__ import annotations

import re
import unicodedata

_BRACKETS = str.maketrans({"【": "[", "】": "]", "〔": "[", "〕": "]", "「": "[", "」": "]"})
_SPACE = re.compile(r"\s+")
_PREFIX = re.compile(r"^\s*(?:re|fw|fwd|aw|wg|tr|転送|返信)\s*(?:\[\d+\]|\^\d+)?\s*[:>]\s*", re.I)
CASE_NUMBER = re.compile(r"MB-(\d{6,})")


def nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def name_key(name: str) -> str:
    """An operator's name as registered names are compared: NFKC, no whitespace (the register
    keeps it beside the name, indexed, so a lookup by name reads one row, not the register)."""
    return _SPACE.sub("", nfkc(name))


def fold(text: str) -> str:
    """NFKC, one kind of square bracket, no whitespace: the form subjects are compared in."""
    return _SPACE.sub("", nfkc(text).translate(_BRACKETS))


def strip_reply_prefixes(subject: str) -> str:
    """Drop any run of Re:/Fw:/転送: … prefixes, in any width."""
    text = nfkc(subject)
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            return text.strip()
        text = stripped


def case_number_in(subject: str) -> int | None:
    """The case number (MB-000123) a participant kept in the subject, if any."""
    match = CASE_NUMBER.search(nfkc(subject))
    return int(match.group(1)) if match else None


def format_case_number(case_id: int) -> str:
    return f"MB-{case_id:06d}"


def single_line(text: str, limit: int = 200) -> str:
    """Make a value safe to put in a header: no CR/LF or other controls, bounded length."""
    if text.isprintable():  # no control, format or unassigned character: nothing to replace
        cleaned = text
    else:
        cleaned = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    cleaned = _SPACE.sub(" ", cleaned).strip()
    return cleaned[:limit]


_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def visible(text: str) -> str:
    """Text as a mail we write may carry it: no control characters but newline and tab, and no
    bidi overrides or invisible marks (U+202E makes `gnp.xlsx` read as `xslx.png`)."""
    return _HIDDEN.sub("", text)
