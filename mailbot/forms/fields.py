"""Field formats shared by every procedure (SPEC §2, seed 000): dates, fiscal years, amounts,
参加区分, names, postal codes, phone numbers, mail addresses, 事業者コード, areas, licenses.

Each function takes a value as a participant wrote it (a cell value or a piece of body text)
and returns either the normalised value (None when it cannot be read) or, for `check_*`, a
Japanese problem message in the operator's polite style (None when the value is fine).

Pure: no I/O, no clock, no store. Never raises on odd input (None, bools, floats, huge text):
a participant's typo is a problem message, not an exception.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime

PARTICIPATION_CATEGORIES: tuple[str, ...] = (
    "安定電源",
    "変動電源（単独）",
    "変動電源（アグリゲート）",
    "発動指令電源（電源）",
    "発動指令電源（DR）",
    "発動指令電源（電源／DR混在）",
)

AREA_DIGITS: dict[str, int] = {
    "北海道": 1,
    "東北": 2,
    "東京": 3,
    "中部": 4,
    "北陸": 5,
    "関西": 6,
    "中国": 7,
    "四国": 8,
    "九州": 9,
}
AREAS: tuple[str, ...] = tuple(AREA_DIGITS)
NEGAWATT_AREAS: tuple[str, ...] = (*AREAS, "沖縄")

GENERATION = "発電"
RETAIL = "小売"
DEMAND_RESPONSE = "区分なし（需要抑制）"
LICENSE_CATEGORIES: tuple[str, ...] = (GENERATION, RETAIL, DEMAND_RESPONSE)

OPERATOR_NAME_MAX_WIDTH = 50
SHORT_NAME_MAX_CHARS = 10
SHORT_NAME_SUFFIX = "_容"

_SPACE = re.compile(r"\s+")
# Dashes participants type for a hyphen; NFKC leaves most of them alone.
_DASHES = str.maketrans(dict.fromkeys("‐‑‒–—―−ーｰ－﹣⁃", "-"))
_BRACKETS = str.maketrans(
    {"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")", "〈": "(", "〉": ")"}
)
_QUOTES = re.compile(r"[『』「」“”\"'‘’]")
_ERAS = {"令和": 2018, "平成": 1988}
_ERA_YEAR = r"(?P<era>令和|平成)(?P<eyear>元|\d{1,2})年"


def _text(value: object) -> str | None:
    """The value as NFKC text without surrounding blanks; None for what is not text-like."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, (str, int, float)):
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip()
    return text or None


def _fold(text: str) -> str:
    """NFKC, no whitespace, one kind of round bracket, no quotes: how labels and categories
    are compared. Never what is stored."""
    folded = unicodedata.normalize("NFKC", text).translate(_BRACKETS)
    return _QUOTES.sub("", _SPACE.sub("", folded))


# --- dates and numbers -----------------------------------------------------------------------

_DATE_PATTERNS = (
    re.compile(r"(?P<y>\d{4})\s*[/\-.]\s*(?P<m>\d{1,2})\s*[/\-.]\s*(?P<d>\d{1,2})"),
    re.compile(r"(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日?"),
    re.compile(_ERA_YEAR + r"\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日?"),
    re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"),
)
# What may follow a date in a cell: a time Excel wrote when the cell was text, or a weekday.
_DATE_TAIL = re.compile(r"\s*(?:\d{1,2}:\d{2}(?::\d{2})?)?\s*(?:\([月火水木金土日]\))?\s*")


def _era_year(era: str, year: str) -> int:
    return _ERAS[era] + (1 if year == "元" else int(year))


def parse_date(value: object) -> date | None:
    """A date from an Excel date cell or from text as participants write it: 2016/02/01,
    2016/2/1, 2016-02-01, full-width digits, 2016年2月1日, 令和2年3月1日, 令和元年5月1日.
    None when it is not one of those or not a real day."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    for pattern in _DATE_PATTERNS:
        match = pattern.match(text)
        if match is None or not _DATE_TAIL.fullmatch(text, match.end()):
            continue
        parts = match.groupdict()
        year = _era_year(parts["era"], parts["eyear"]) if parts.get("era") else int(parts["y"])
        try:
            return date(year, int(parts["m"]), int(parts["d"]))
        except ValueError:
            return None
    return None


_FISCAL_YEAR = re.compile(r"(?:FY)?(?P<y>\d{4})(?:年度?)?", re.I)
_ERA_FISCAL_YEAR = re.compile(_ERA_YEAR + r"度?")


def parse_fiscal_year(value: object) -> int | None:
    """応札年度 as the year it starts in: 2023, 2023年度, ２０２３年度, 令和5年度 → 2023."""
    text = _text(value)
    if text is None:
        return None
    text = _SPACE.sub("", text)
    match = _FISCAL_YEAR.fullmatch(text)
    if match:
        year = int(match["y"])
    else:
        match = _ERA_FISCAL_YEAR.fullmatch(text)
        if match is None:
            return None
        year = _era_year(match["era"], match["eyear"])
    return year if 2000 <= year <= 2200 else None


_AMOUNT = re.compile(r"(?P<n>\d{1,3}(?:,\d{3})+|\d+)(?:\.0+)?\s*(?:kW)?", re.I)


def whole_number(value: object, from_text: Callable[[object], int | None]) -> int | None:
    """A cell that must hold an exact integer: a number cell as it is (True is not 1, 1.9 is
    not 1); anything else as `from_text` reads it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    return from_text(value)


def _amount_text(value: object) -> int | None:
    text = _text(value)
    match = _AMOUNT.fullmatch(text) if text is not None else None
    return int(match["n"].replace(",", "")) if match else None


def parse_int_amount(value: object) -> int | None:
    """A whole amount: 999999999, 999,999,999, 999,999,999kW, full-width digits and commas."""
    return whole_number(value, _amount_text)


# --- 参加区分 -------------------------------------------------------------------------------

# On folded text. 発電指令電源 is the seed's own misspelling; 提供者 appears in its examples;
# (電源の場合) / (DRを活用する場合) are its wording in the 取得要否 table.
_DISPATCH = r"発[動電]指令電源(?:提供者)?"
_CATEGORY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("発動指令電源（電源／DR混在）", _DISPATCH + r"\((?:電源[/・、,]?DR|DR[/・、,]?電源)混在\)"),
    ("発動指令電源（電源）", _DISPATCH + r"\(電源(?:の場合)?\)"),
    ("発動指令電源（DR）", _DISPATCH + r"\(DR(?:を活用する場合)?\)"),
    ("変動電源（単独）", r"変動電源\(単独\)"),
    ("変動電源（アグリゲート）", r"変動電源\(アグリゲート\)"),
    ("安定電源", r"安定電源"),
)
_CATEGORY_RE = re.compile(
    "|".join(f"(?P<c{i}>{pattern})" for i, (_, pattern) in enumerate(_CATEGORY_PATTERNS)),
    re.I,
)


def _category_of(match: re.Match[str]) -> str:
    index = int(next(name for name, text in match.groupdict().items() if text)[1:])
    return _CATEGORY_PATTERNS[index][0]


def participation_category(text: object) -> str | None:
    """The canonical 参加区分 when `text` names exactly one (a cell, or a value after a label);
    None when it names none or something else as well."""
    folded = _text(text)
    if folded is None:
        return None
    folded = _fold(folded).strip("・-")
    match = _CATEGORY_RE.fullmatch(folded)
    return _category_of(match) if match else None


def find_participation_categories(body_text: str) -> list[str]:
    """Every 参加区分 named in a body, canonical, in order of first mention, each once.
    The alternatives never overlap: 発動指令電源（電源／DR混在） is not also （電源） or （DR）."""
    found: list[str] = []
    for match in _CATEGORY_RE.finditer(_fold(body_text)):
        category = _category_of(match)
        if category not in found:
            found.append(category)
    return found


# --- names ---------------------------------------------------------------------------------


def name_width(text: str) -> int:
    """Width the way the seed counts 事業者名称: full-width 2, half-width (ASCII, half-width
    katakana) 1. Ambiguous-width characters (○, ※, Greek) are full-width in Japanese fonts."""
    return sum(1 if unicodedata.east_asian_width(ch) in "NaH" else 2 for ch in text)


def check_operator_name(value: object) -> str | None:
    """事業者名称: required; at most 25 full-width characters, or 50 if all half-width."""
    text = value.strip() if isinstance(value, str) else None
    if not text:
        return (
            "事業者名称が記載されておりません。参加登録時に記入予定の事業者名称をご記載ください。"
        )
    width = name_width(text)
    if width > OPERATOR_NAME_MAX_WIDTH:
        return (
            "事業者名称は全角25文字（すべて半角の場合は50文字）以内でご記載ください"
            f"（記載内容は全角換算で{width / 2:g}文字です）。"
        )
    return None


def check_short_name(value: object) -> str | None:
    """事業者名略称: required; at most 10 characters including the suffix; ends with `_容`.

    A full-width underscore (＿容) is accepted: it is the same mark typed with the IME on, and
    NFKC folds it to `_`; the seed asks for the mark, not for a byte. Counting is by character
    as written (what Excel's LEN shows), not by width."""
    text = value.strip() if isinstance(value, str) else None
    if not text:
        return "事業者名略称が記載されておりません。末尾に「_容」を付けた略称をご記載ください（例：広域機関_容）。"
    problems = []
    if not unicodedata.normalize("NFKC", text).endswith(SHORT_NAME_SUFFIX):
        problems.append("末尾に「_容」をお付けください（例：広域機関_容）")
    if len(text) > SHORT_NAME_MAX_CHARS:
        problems.append(f"最大10文字でご記載ください（記載内容は{len(text)}文字です）")
    if not problems:
        return None
    return "事業者名略称は、" + "。また、".join(problems) + "。"


# --- contact details -----------------------------------------------------------------------

_POSTAL = re.compile(r"〒?(?P<a>\d{3})-?(?P<b>\d{4})")


def normalise_postal_code(value: object) -> str | None:
    """郵便番号 as NNN-NNNN; full-width digits, 〒 and any dash (ー, －, ‐) accepted."""
    text = _text(value)
    if text is None:
        return None
    match = _POSTAL.fullmatch(_SPACE.sub("", text.translate(_DASHES)))
    return f"{match['a']}-{match['b']}" if match else None


def check_postal_code(value: object) -> str | None:
    if _text(value) is None:
        return "郵便番号が記載されておりません。「123-4567」の形式でご記載ください。"
    if normalise_postal_code(value) is None:
        return "郵便番号は「123-4567」の形式（半角数字7桁、3桁目の後にハイフン）でご記載ください。"
    return None


_PHONE_CHARS = re.compile(r"[\d\-()+]+")


def normalise_phone(value: object) -> str | None:
    """A Japanese phone or FAX number as written, with dashes made `-`: 10 or 11 digits from
    a leading 0 (or +81 then 9–10 digits). Brackets and hyphens may group it any way."""
    text = _text(value)
    if text is None:
        return None
    text = _SPACE.sub("", text.translate(_DASHES))
    if not _PHONE_CHARS.fullmatch(text):
        return None
    digits = re.sub(r"\D", "", text)
    if text.startswith("+81"):
        return text if 11 <= len(digits) <= 12 and digits[2] != "0" else None
    return text if digits.startswith("0") and 10 <= len(digits) <= 11 else None


def check_phone(value: object, label: str = "連絡者電話番号", required: bool = True) -> str | None:
    if _text(value) is None:
        return f"{label}が記載されておりません。" if required else None
    if normalise_phone(value) is None:
        return f"{label}は市外局番から、半角数字とハイフンでご記載ください（例：03-1234-5678）。"
    return None


_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def normalise_email(value: object) -> str | None:
    """A mail address from a cell: NFKC (a full-width ＠ happens), `mailto:` dropped, the
    domain lower-cased. Local parts with odd dots are kept: Japanese carriers issued them."""
    text = _text(value)
    if text is None:
        return None
    text = text.removeprefix("mailto:")
    if len(text) > 254 or not _EMAIL.fullmatch(text):
        return None
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def is_email(text: object) -> bool:
    return normalise_email(text) is not None


def check_email(value: object, label: str = "連絡者メール") -> str | None:
    if _text(value) is None:
        return f"{label}が記載されておりません。"
    if normalise_email(value) is None:
        return f"{label}のメールアドレスの形式に誤りがございます。半角英数字でご確認のうえご記載ください。"
    return None


def normalise_domain(value: object) -> str | None:
    """ドメイン名 as written by participants: `example.co.jp`, `@example.co.jp`,
    `https://www.example.co.jp/` all become `example.co.jp`."""
    text = _text(value)
    if text is None:
        return None
    text = _SPACE.sub("", text).lower()
    text = re.sub(r"^[a-z]+://", "", text).split("/", 1)[0].lstrip("@").removeprefix("www.")
    return text.rstrip(".") or None


def domain_matches(email: object, domain: object) -> bool:
    """Does the address belong to the domain: the same domain or a subdomain of it,
    case-insensitive (`taro@tokyo.example.co.jp` belongs to `example.co.jp`)."""
    address = normalise_email(email)
    wanted = normalise_domain(domain)
    if address is None or wanted is None:
        return False
    host = address.rsplit("@", 1)[1]
    return host == wanted or host.endswith("." + wanted)


# --- codes, areas, licenses ----------------------------------------------------------------

_OPERATOR_CODE = re.compile(r"[0-9A-Z]{4}")


def normalise_code(text: object) -> str:
    """A code as every register and comparison holds it: NFKC (full-width １２３４ → 1234),
    no surrounding space, upper case. Applied wherever a code enters: a decision, a
    workbook, an import, the register."""
    return unicodedata.normalize("NFKC", str(text or "")).strip().upper()


def is_operator_code(text: object) -> bool:
    """事業者コード: 4 characters, digits or capital letters (`1234`, `ABCD`). Full-width
    input is folded first; lower case is not a code."""
    folded = _text(text)
    return folded is not None and _OPERATOR_CODE.fullmatch(folded) is not None


_GRID_CODE = re.compile(r"[0-9A-Z]{5}")


def is_grid_code(text: object) -> bool:
    """系統コード: 5 characters, digits or capital letters, as seed 000 writes every one
    (「風力 : 1X222」, 「1YA22 ※新規取得が必要」); full-width input is folded first. The seed
    gives no rule to derive one (「実際に発番されるコードは、申請毎に異なります」): staff give it."""
    folded = _text(text)
    return folded is not None and _GRID_CODE.fullmatch(folded) is not None


def area_name(text: object) -> str | None:
    """The area a participant named, canonical: `東京`, `東京エリア`, `東　京` → 東京.
    Utility company names (東京電力パワーグリッド) are not areas and give None."""
    folded = _text(text)
    if folded is None:
        return None
    folded = _SPACE.sub("", folded).removesuffix("エリア")
    return folded if folded in NEGAWATT_AREAS else None


def area_digit(name: object) -> int | None:
    """The area digit (北海道 1 … 九州 9) of an area name; 沖縄 has none."""
    area = area_name(name)
    return AREA_DIGITS.get(area) if area else None


def license_category(text: object) -> str | None:
    """A ライセンス区分 as the seed spells it: 発電, 小売, 区分なし（需要抑制）, from the widths,
    brackets and longer wordings participants use (区分なし(需要抑制), 発電事業者, 小売電気事業者)."""
    folded = _text(text)
    if folded is None:
        return None
    folded = _fold(folded)
    if re.fullmatch(r"区分(?:なし|無し)(?:\(需要抑制\))?|需要抑制", folded):
        return DEMAND_RESPONSE
    if re.fullmatch(r"発電(?:事業者?)?", folded):
        return GENERATION
    if re.fullmatch(r"小売(?:電気)?(?:事業者?)?", folded):
        return RETAIL
    return None
