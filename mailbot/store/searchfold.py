"""The one folding that both the search index and a staff query go through, so that what staff
type finds what participants wrote however either spelled it:

- NFKC: half-width kana (ｴﾅｼﾞｰ → エナジー), full-width letters and digits, and the CJK
  compatibility ideographs that have a canonical form;
- case (casefold);
- 異体字: a variant kanji becomes the standard one it stands for (髙 → 高, 德 → 徳, 﨑 → 崎,
  邊 → 辺, 澤 → 沢 …), from the 異体字 table of the `ja-itaiji` package (16,000 entries).

The table lists families, not a direction, and lists a few unrelated characters together, so a
variant is folded only onto a JIS X 0208 first-level kanji (the standard, common form) of a
lower level than itself, one whose own family lists it back; of several, the one whose family
is most alike its own. Standard kanji never fold, so 崎 and 埼 stay apart. `CORRECTIONS` holds
the few places where that choice comes out wrong.

Changing the folding means the index must be rebuilt (a schema step, as `_fold_search_index`).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from importlib.resources import files

CORRECTIONS = {
    "﨑": "崎",  # the table ties 碕, 埼 and 崎; 﨑 is the 崎 of names (宮﨑, 山﨑)
    "嵜": "崎",
    "靄": "靄",  # listed beside 謁, which it is not
}
"""Variant → standard where the table's families alone choose wrong."""

_CASE_NUMBER = re.compile(r"^(?:mb-?)?0*(\d{1,9})$")


def _jis_level(ch: str) -> int:
    """1 for a JIS X 0208 first-level kanji, 2 for second level, 3 outside JIS X 0208
    (IBM/NEC extensions such as 髙 and 﨑, JIS X 0213, other Unicode ideographs)."""
    try:
        code = ch.encode("shift_jis")
    except UnicodeEncodeError:
        return 3
    if len(code) < 2:
        return 0
    return 1 if (code[0], code[1]) <= (0x98, 0x72) else 2


@functools.cache
def variant_table() -> dict[int, str]:
    """`str.translate` table: variant kanji → the standard kanji it folds to."""
    from ja_itaiji import ja_itaiji

    path = files(ja_itaiji.__package__ or "ja_itaiji").joinpath("data/term/ja-itaiji.json")
    families: dict[str, list[str]] = json.loads(path.read_text(encoding="utf-8"))
    chosen: dict[str, str] = {}
    for ch, family in families.items():
        level = _jis_level(ch)
        if level == 1:
            continue
        own = set(family)
        candidates = [
            m
            for m in family
            if m != ch and ch in families.get(m, ()) and _jis_level(m) == 1 and len(m) == 1
        ]
        if not candidates:
            continue

        def likeness(m: str, own: set[str] = own, family: list[str] = family) -> tuple:
            theirs = set(families.get(m, ()))
            return (-len(own & theirs) / len(own | theirs), family.index(m))

        chosen[ch] = min(candidates, key=likeness)
    chosen.update(CORRECTIONS)
    return {ord(k): v for k, v in chosen.items() if len(k) == 1 and k != v}


def fold(text: str) -> str:
    """The text as the index keeps it and as a query is matched: NFKC, casefolded, variant
    kanji folded to their standard form. Kanji are folded after NFKC, so a compatibility
    ideograph first takes its canonical form."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    return folded.translate(variant_table())


def case_number(term: str) -> int | None:
    """The case a folded query term names by its 受付番号 (`mb-000082`, `mb82`, `82`)."""
    found = _CASE_NUMBER.match(term)
    return int(found.group(1)) if found and int(found.group(1)) > 0 else None
