"""What of a stranger's text a mail from the desk may carry (README "Security").

Anyone can write a From: at a domain that publishes no DMARC policy, so an automatic reply is
a mail the operator sends, from its own address, to whomever a stranger names. Such a reply
must carry no link or address of the stranger's: the operator would be mailing their
phishing text to a third party. `quotable` is applied to the whole render context of every
mail to a recipient the desk has not verified; templates need no care of their own.

Pure: text in, text out. Links are found in each character's NFKC form (a full-width
`ｈｔｔｐｓ：／／` is a link to a mail reader that folds widths), after the invisible
characters that would split one (`text.visible`, and every other format character) are gone.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from mailbot.text import visible

URL_MARK = "［URL省略］"
ADDRESS_MARK = "［メールアドレス省略］"
# Where a link or address written without spaces in Japanese text ends: whitespace, the
# brackets and punctuation that close a quotation, and anything a URL cannot hold raw.
_STOP = r"\s<>\"'「」『』【】（）()\[\]{}、，,;；"
_DOT = r"[.。]"
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_SCHEME_URL = rf"[a-z][a-z0-9+.\-]{{1,15}}:/{{1,3}}[^{_STOP}]*"
_ADDRESS = rf"[a-z0-9!#$%&*+/=?^_`{{|}}~.\-]+@[^{_STOP}:@。]+"
_HOST = rf"(?<![a-z0-9_\-.])(?:{_LABEL}{_DOT})+(?:[a-z]{{2,63}}|xn--[a-z0-9\-]+)(?![a-z0-9_\-])"
_IPV4 = rf"(?<![0-9.])(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}[/:][^{_STOP}]*"
_FOUND = re.compile(
    rf"(?P<url>{_SCHEME_URL})|(?P<address>{_ADDRESS})"
    rf"|(?P<host>{_HOST}(?:[/:][^{_STOP}]*)?|{_IPV4})",
    re.IGNORECASE,
)
# Characters a reader does not show (format characters: zero-width, soft hyphen, bidi marks,
# variation selectors, tags; invisible fillers): gone before links are looked for, since a
# link written with one inside still reads, and may be followed, as the link.
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]"
)
# `name.xlsx` is a file, not a host: extensions that are no top-level domain (.zip is one).
FILE_EXTENSIONS = frozenset(
    [
        "xlsx",
        "xlsm",
        "xls",
        "xltx",
        "csv",
        "pdf",
        "doc",
        "docx",
        "ppt",
        "pptx",
        "txt",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "tif",
        "tiff",
        "bmp",
        "eml",
        "msg",
        "json",
        "xml",
        "htm",
        "html",
        "lzh",
        "7z",
        "gz",
    ]
)


def _folded(text: str) -> tuple[str, Sequence[int]]:
    """`text` with each character in its NFKC form, and for each folded character the index of
    the character it came from (so a match maps back onto the text as written)."""
    out: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        folded = ch if ch.isascii() else unicodedata.normalize("NFKC", ch)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


def _is_file_name(found: str) -> bool:
    head, _, extension = found.rpartition(".")
    return "." not in head and "。" not in head and extension.lower() in FILE_EXTENSIONS


def defang(text: str, own: frozenset[str] = frozenset()) -> str:
    """`text` with every link (`https://…`, `hxxp://…`, `www.example.com`, `evil.example/x`,
    in any width) replaced by URL_MARK and every mail address by ADDRESS_MARK, except the
    addresses in `own` (lower case): the desk's own, which a reply names on purpose."""
    if not _CANDIDATE.search(text):
        return text
    return _defang(text, own)


# A link or an address needs a dot (an ideographic one only before a letter or digit: it ends
# most Japanese sentences), an at sign or a colon (`https://intranet/x`), in some width: text
# without one is left as it is without being looked at closer.
_CANDIDATE = re.compile("[.@:．｡＠﹫․﹒：]|。[0-9A-Za-z０-９Ａ-Ｚａ-ｚ]")


@functools.lru_cache(maxsize=8192)
def _defang(text: str, own: frozenset[str]) -> str:
    text = _INVISIBLE.sub("", visible(text))
    if text.isascii():
        folded, origin = text, range(len(text))
    else:
        folded = unicodedata.normalize("NFKC", text)
        if not _FOUND.search(folded):
            return text
        folded, origin = _folded(text)
    out: list[str] = []
    at = 0
    for found in _FOUND.finditer(folded):
        value = found.group(0).rstrip(".。")
        if found.group("host") and _is_file_name(value):
            continue
        if found.group("address") and value.lower() in own:
            continue
        start = origin[found.start()]
        end = origin[found.start() + len(value) - 1] + 1
        if start < at:
            continue
        out.append(text[at:start])
        out.append(ADDRESS_MARK if found.group("address") else URL_MARK)
        at = end
    if not out:
        return text
    out.append(text[at:])
    return "".join(out)


# What a reply prints of the stranger by name: left out, not defanged, for an unverified
# recipient (the addressee becomes ご担当者様 and the receipt's ■件名 line goes).
LEFT_OUT = ("recipient_name", "original_subject")


def quotable(
    context: Mapping[str, Any],
    own: frozenset[str],
    desk_keys: Collection[str],
    left_out: Collection[str] = LEFT_OUT,
) -> dict[str, Any]:
    """The render context of a mail to an unverified recipient: the sender's display name and
    subject (`left_out`) emptied, and every other string, however deep in dicts and lists
    (the case, form values, attachment names, problem messages that quote what was written),
    `defang`ed. Values under `desk_keys` at the top level are what the desk wrote (a reason or
    reply staff typed, its own signature) and stay as they are."""
    out: dict[str, Any] = {}
    for key, value in context.items():
        if key in left_out:
            out[key] = ""
        elif key in desk_keys:
            out[key] = value
        else:
            out[key] = _walk(value, own)
    return out


def _walk(value: Any, own: frozenset[str]) -> Any:
    if isinstance(value, str):
        return defang(value, own)
    if isinstance(value, Mapping):
        return {k: _walk(v, own) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return (
            [_walk(v, own) for v in value]
            if isinstance(value, list)
            else tuple(_walk(v, own) for v in value)
        )
    return value
