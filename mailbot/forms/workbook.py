"""Excel application forms (事業者マスタ申込書, 発電所マスタ申込書): a safety check of the bytes
before anything opens them, then reading each field by its label, not by a fixed cell.

Attachments are hostile input (STACK-NOTES): a macro workbook renamed .xlsx loads silently,
a compressed bomb makes openpyxl read gigabytes, an encrypted workbook is an OLE2 file like a
legacy .xls. So `inspect` looks only at the zip directory and the first bytes of each XML
part, and `read_form` opens a workbook only after `inspect` found nothing.

Pure: reads only the bytes it is given (and `load_form_rules` its TOML file). It never
writes, never executes or keeps macros, never follows external links, and never raises on
a bad attachment: every failure becomes a `WorkbookProblem` with a stable `kind` and a
message the participant can act on.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import threading
import tomllib
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property, lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from defusedxml import DefusedXmlException
from python_calamine import CalamineWorkbook

from mailbot.errors import ConfigError
from mailbot.forms import fields
from mailbot.rulefile import RulesFile
from mailbot.text import single_line

log = logging.getLogger(__name__)

CellValue = str | int | float | bool | date | datetime | time

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")
WORKBOOK_PART = "xl/workbook.xml"
CONTENT_TYPES_PART = "[Content_Types].xml"
MACRO_PARTS = ("vbaproject.bin", "vbaprojectsignature.bin")

# Problem kinds: stable codes stored with the case and used by tests and reports.
EMPTY = "empty"
TOO_LARGE = "too_large"
ENCRYPTED = "encrypted"
LEGACY_XLS = "legacy_xls"
NOT_ZIP = "not_zip"
BROKEN_ZIP = "broken_zip"
TOO_MANY_PARTS = "too_many_parts"
ZIP_BOMB = "zip_bomb"
UNSAFE_PART_NAME = "unsafe_part_name"
UNSAFE_COMPRESSION = "unsafe_compression"
MACRO = "macro"
NOT_WORKBOOK = "not_workbook"
XML_DTD = "xml_dtd"
UNREADABLE = "unreadable"
NOT_FORM = "not_form"
TOO_MANY_CELLS = "too_many_cells"

# How far a form is searched. The real forms fit in 30 rows × 12 columns; a sheet that claims
# a million rows is not read to its end.
MAX_ROWS = 500
MAX_COLUMNS = 100
MAX_TABLE_ROWS = 50
# A DOCTYPE must come before the root element; this much prolog is read to find it.
PROLOG_BYTES = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """Sizes past which an attachment is not opened. A filled-in form is 10–60 KB zipped and
    under 1 MB unzipped; the defaults leave room for pasted logos, not for bombs."""

    max_bytes: int = 10 * 1024 * 1024
    max_parts: int = 1000
    max_uncompressed: int = 50 * 1024 * 1024
    max_ratio: float = 100.0
    ratio_floor: int = 1024 * 1024
    max_cells: int = 50_000
    max_shared_text: int = 128 * 1024 * 1024
    max_rows: int = 1_048_576
    max_columns: int = 16_384


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class WorkbookProblem:
    """`message` is for the participant (Japanese, polite); `detail` is for staff and logs
    and never quotes the file's content."""

    kind: str
    message: str
    detail: str = ""


def _subject(filename: str) -> str:
    """The file as a message names it: one line, bounded, since the name is the sender's."""
    name = single_line(filename, 120)
    return f"添付ファイル「{name}」" if name else "添付ファイル"


_RESEND = "保存し直したうえで、再度お送りくださいますようお願いいたします。"
_MESSAGES: dict[str, str] = {
    EMPTY: "{subject}は内容が空（0バイト）でした。申込書（.xlsx 形式）を添付のうえ、"
    "再度お送りくださいますようお願いいたします。",
    TOO_LARGE: "{subject}はファイルサイズが大きすぎるため、受け付けることができません。"
    "申込書のみを含む .xlsx 形式のブックとして" + _RESEND,
    ENCRYPTED: "{subject}はパスワードで保護（暗号化）されているため、内容を確認することができません。"
    "パスワードを解除し、.xlsx 形式で" + _RESEND,
    LEGACY_XLS: "{subject}は旧形式（Excel 97-2003 ブック .xls）のため、受け付けておりません。"
    "Excel で「Excel ブック（*.xlsx）」形式を選択して" + _RESEND,
    NOT_ZIP: "{subject}は Excel ブック（.xlsx 形式）として読み取ることができませんでした。"
    "本機関ホームページからダウンロードした申込書に記入し、.xlsx 形式で" + _RESEND,
    BROKEN_ZIP: "{subject}は破損している可能性があるため、内容を確認できませんでした。"
    "お手数ですが、申込書を .xlsx 形式で" + _RESEND,
    TOO_MANY_PARTS: "{subject}は構成が通常の申込書と大きく異なるため、安全のため開封しておりません。"
    "申込書を新しいブックにコピーせず、ダウンロードした様式のまま .xlsx 形式で" + _RESEND,
    ZIP_BOMB: "{subject}は展開後のデータ量が異常に大きいため、安全のため開封しておりません。"
    "申込書以外のシートや画像を含めず、.xlsx 形式で" + _RESEND,
    UNSAFE_PART_NAME: "{subject}は不正な構造を含むため、安全のため開封しておりません。"
    "申込書を Excel で開き、.xlsx 形式で" + _RESEND,
    UNSAFE_COMPRESSION: "{subject}は Excel が使用しない圧縮形式を含むため、安全のため開封しておりません。"
    "申込書を Excel で開き、.xlsx 形式で" + _RESEND,
    MACRO: "{subject}はマクロを含むブック（.xlsm 等）のため、受け付けておりません。"
    "マクロを含まない「Excel ブック（*.xlsx）」形式で" + _RESEND,
    NOT_WORKBOOK: "{subject}は Excel ブックではないため、内容を確認できませんでした。"
    "本機関ホームページからダウンロードした申込書に記入し、.xlsx 形式で" + _RESEND,
    XML_DTD: "{subject}は Excel が通常作成しない構造（DTD 宣言）を含むため、安全のため開封して"
    "おりません。申込書を Excel で開き、.xlsx 形式で" + _RESEND,
    UNREADABLE: "{subject}を Excel ブックとして開くことができませんでした。"
    "ファイルが破損している可能性がありますので、申込書を .xlsx 形式で" + _RESEND,
    TOO_MANY_CELLS: "{subject}はセルの数や範囲が通常の申込書と大きく異なるため、安全のため開封して"
    "おりません。申込書以外の内容を含めず、ダウンロードした様式のまま .xlsx 形式で" + _RESEND,
    NOT_FORM: "{subject}に{form}の記入欄が見当たりませんでした。本機関ホームページから"
    "ダウンロードした{form}の様式のまま記入し、.xlsx 形式で" + _RESEND,
}


def problem(
    kind: str, filename: str = "", detail: str = "", form: str = "申込書"
) -> WorkbookProblem:
    """The problem of that kind, worded for the participant about that file."""
    return WorkbookProblem(
        kind, _MESSAGES[kind].format(subject=_subject(filename), form=form), detail
    )


# --- the safety check ----------------------------------------------------------------------


def inspect(filename: str, data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[WorkbookProblem]:
    """What forbids opening these bytes as a workbook; empty when they may be opened.

    Looks at the content, never trusts the name: a .xlsm renamed .xlsx is still a macro
    workbook, and a real .xlsx named .xls is fine. Sizes are the ones the zip directory
    declares; Python's zipfile never inflates a part past its declared size (it stops there
    and fails the CRC), so the declared sizes bound what openpyxl can read."""
    if not data:
        return [problem(EMPTY, filename)]
    if len(data) > limits.max_bytes:
        return [problem(TOO_LARGE, filename, f"{len(data)} bytes > {limits.max_bytes}")]
    if data.startswith(OLE2_MAGIC[:4]):
        if ENCRYPTION_STREAM in data:
            return [problem(ENCRYPTED, filename, "OLE2 file with an EncryptionInfo stream")]
        return [problem(LEGACY_XLS, filename, "OLE2 compound file (legacy .xls)")]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _inspect_zip(filename, archive, limits, data)
    except zipfile.BadZipFile as exc:
        kind = BROKEN_ZIP if data.startswith(b"PK") else NOT_ZIP
        return [problem(kind, filename, f"zip: {exc}")]
    except Exception as exc:  # a hostile zip directory may fail in any way; none may escape
        return [problem(BROKEN_ZIP, filename, f"zip: {type(exc).__name__}: {exc}")]


_EXCEL_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def _part_key(name: str) -> str:
    """A part's name as readers match it: either slash, no leading slash, any letter case."""
    return name.replace("\\", "/").lstrip("/").lower()


def _named_alike(infos: list[zipfile.ZipInfo]) -> str | None:
    """The first part name that another part also has, once matched as readers match it."""
    seen: set[str] = set()
    for info in infos:
        key = _part_key(info.filename)
        if key in seen:
            return info.filename
        seen.add(key)
    return None


def _unsafe_name(name: str) -> bool:
    path = name.replace("\\", "/")
    return (
        "\x00" in name
        or path.startswith("/")
        or re.match(r"[A-Za-z]:", path) is not None
        or ".." in PurePosixPath(path).parts
    )


def _inspect_zip(
    filename: str, archive: zipfile.ZipFile, limits: Limits, data: bytes
) -> list[WorkbookProblem]:
    infos = archive.infolist()
    if len(infos) > limits.max_parts:
        return [problem(TOO_MANY_PARTS, filename, f"{len(infos)} parts > {limits.max_parts}")]
    found: list[WorkbookProblem] = []
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed:
        found.append(problem(ZIP_BOMB, filename, f"{total} bytes unzipped"))
    else:
        for info in infos:
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > limits.ratio_floor and ratio > limits.max_ratio:
                found.append(problem(ZIP_BOMB, filename, f"{info.filename}: ratio {ratio:.0f}"))
                break
    bad_names = [info.filename for info in infos if _unsafe_name(info.filename)]
    if bad_names:
        found.append(problem(UNSAFE_PART_NAME, filename, f"part name {bad_names[0]!r}"))
    alike = _named_alike(infos)
    if alike:
        # the preflight would read one of them and a reader the other
        found.append(problem(UNSAFE_PART_NAME, filename, f"two parts named {alike!r}"))
    packed = [i.filename for i in infos if i.compress_type not in _EXCEL_COMPRESSION]
    if packed:
        # zipfile inflates bzip2 and LZMA without a bound before it cuts to the declared size
        found.append(problem(UNSAFE_COMPRESSION, filename, f"{packed[0]!r} is not deflated"))
    if any(info.flag_bits & 0x1 for info in infos):
        found.append(problem(ENCRYPTED, filename, "zip parts are encrypted"))
    if found:
        return found
    names = {info.filename for info in infos}
    if any(name.lower().rsplit("/", 1)[-1] in MACRO_PARTS for name in names) or (
        CONTENT_TYPES_PART in names and b"macroenabled" in archive.read(CONTENT_TYPES_PART).lower()
    ):
        found.append(problem(MACRO, filename, "vbaProject part or macroEnabled content type"))
    if WORKBOOK_PART not in names:
        found.append(problem(NOT_WORKBOOK, filename, f"no {WORKBOOK_PART}"))
    whole: dict[int, bytes] = {}
    dtd = next((info.filename for info in infos if _declares_dtd(archive, info, whole)), None)
    if dtd is not None:
        found.append(problem(XML_DTD, filename, f"{dtd}: DOCTYPE or ENTITY declaration"))
    if found:
        return found
    extent = _extent_of(data, archive, whole)
    if (
        extent.cells > limits.max_cells
        or extent.rows > limits.max_rows
        or extent.columns > limits.max_columns
    ):
        detail = f"{extent.cells} cells up to row {extent.rows}, column {extent.columns}"
        found.append(problem(TOO_MANY_CELLS, filename, detail))
    elif extent.shared_refs * extent.longest_shared > limits.max_shared_text:
        # a reader copies a shared string into every cell that names it: 10,000 cells naming
        # one 96 KB string are a 24 KB file that asks for a gigabyte
        detail = f"{extent.shared_refs} cells naming shared strings of up to {extent.longest_shared} bytes"
        found.append(problem(TOO_MANY_CELLS, filename, detail))
    return found


_ROOT_START = re.compile(rb"<[A-Za-z_]")


def _declares_dtd(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, whole: dict[int, bytes] | None = None
) -> bool:
    """Entity bombs (billion laughs) need a DOCTYPE, and Excel never writes one. A part no
    longer than the prolog read is read whole, to the end and its CRC: it goes into `whole`
    (by `id(info)`), so that the extent scan does not open and inflate it again."""
    if not info.filename.lower().endswith((".xml", ".rels", ".vml")):
        return False
    with archive.open(info) as part:
        head = part.read(PROLOG_BYTES)
    if whole is not None and info.file_size <= PROLOG_BYTES:
        whole[id(info)] = head
    root = _ROOT_START.search(head)
    prolog = head[: root.start()] if root else head
    return b"<!doctype" in prolog.lower() or b"<!entity" in prolog.lower()


# --- the sheet as values -------------------------------------------------------------------

Range = tuple[int, int, int, int]  # min_row, min_col, max_row, max_col (1-based, inclusive)


@dataclass(frozen=True)
class Grid:
    """One sheet as plain values: non-blank cells by (row, column) and the merged ranges.
    Taken once from openpyxl so that label search and tables are pure and testable."""

    title: str
    cells: Mapping[tuple[int, int], CellValue]
    merged: tuple[Range, ...] = ()

    def range_of(self, row: int, col: int) -> Range:
        """The merged range holding the cell, or the cell alone."""
        for rng in self._merged_on(row):
            if rng[1] <= col <= rng[3]:
                return rng
        return (row, col, row, col)

    @cached_property
    def _rows(self) -> dict[int, list[tuple[int, CellValue]]]:
        """(column, value) of each row's cells, left to right: a check asks for a few rows
        dozens of times, and scanning every cell for each was most of reading a form."""
        rows: dict[int, list[tuple[int, CellValue]]] = {}
        for (r, c), v in sorted(self.cells.items()):
            rows.setdefault(r, []).append((c, v))
        return rows

    @cached_property
    def _merged_by_row(self) -> dict[int, tuple[Range, ...]]:
        """The merged ranges reaching each row asked about so far, in `merged` order (the
        first range holding a cell wins, as Excel shows overlapping ranges)."""
        return {}

    def _merged_on(self, row: int) -> tuple[Range, ...]:
        found = self._merged_by_row.get(row)
        if found is None:
            found = tuple(rng for rng in self.merged if rng[0] <= row <= rng[2])
            self._merged_by_row[row] = found
        return found

    def value(self, row: int, col: int) -> CellValue | None:
        """A cell inside a merged range shows the range's top-left value, as Excel does."""
        top, left, _, _ = self.range_of(row, col)
        return self.cells.get((top, left))

    def row_after(self, row: int, col: int) -> list[tuple[int, CellValue]]:
        """Non-blank (column, value) pairs on `row` right of `col`, left to right; a range
        merged down from a row above counts at its first column on this row."""
        items = {c: v for c, v in self._rows.get(row, ()) if c > col}
        for top, left, _, right in self._merged_on(row):
            if top < row and right > col and (top, left) in self.cells:
                items.setdefault(max(left, col + 1), self.cells[(top, left)])
        return sorted(items.items())

    @cached_property
    def label_places(self) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
        """The first text cell (row by row) of each label key, and of each label stem:
        computed once per sheet, so that finding a label is a lookup, not a scan."""
        keys: dict[str, tuple[int, int]] = {}
        stems: dict[str, tuple[int, int]] = {}
        for place, v in sorted(self.cells.items()):
            if isinstance(v, str):
                keys.setdefault(label_key(v), place)
                stems.setdefault(label_stem(v), place)
        return keys, stems


def _clean(value: Any) -> CellValue | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (int, float, date, datetime, time)):
        return value
    return None


def grid_from_openpyxl(sheet: Any) -> Grid:
    """The first MAX_ROWS × MAX_COLUMNS of an openpyxl worksheet (not read-only: read-only
    sheets have no merged cells)."""
    cells: dict[tuple[int, int], CellValue] = {}
    rows = sheet.iter_rows(
        max_row=min(sheet.max_row, MAX_ROWS), max_col=min(sheet.max_column, MAX_COLUMNS)
    )
    for row in rows:
        for cell in row:
            value = _clean(getattr(cell, "value", None))
            if value is not None:
                cells[(cell.row, cell.column)] = value
    merged = tuple(
        (r.min_row, r.min_col, r.max_row, r.max_col)
        for r in sheet.merged_cells.ranges
        if r.min_row <= MAX_ROWS and r.min_col <= MAX_COLUMNS
    )
    return Grid(sheet.title, cells, merged)


# --- labels --------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_TRAILING_NOTE = re.compile(r"(?:\([^()]*\)|\[[^\[\]]*\]|[*:])$")


def label_key(text: str) -> str:
    """A label as compared: NFKC, no whitespace."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


def label_stem(text: str) -> str:
    """A label cell without its notes: `契約開始日※` → 契約開始日,
    `ライセンス区分 (1件は必須入力)` → ライセンス区分, `＊住所：` → 住所."""
    key = label_key(text).lstrip("※*")
    key = key.split("※", 1)[0]
    while True:
        stripped = _TRAILING_NOTE.sub("", key)
        if stripped == key:
            return key
        key = stripped


@dataclass(frozen=True)
class Spot:
    """Where a label was found: its merged range (or single cell) on the sheet."""

    label: str
    range: Range

    @property
    def coordinate(self) -> str:
        from openpyxl.utils import get_column_letter

        return f"{get_column_letter(self.range[1])}{self.range[0]}"


class Labels:
    """The labels one form has, each with its other spellings; says which cell is which."""

    def __init__(self, labels: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None):
        self.labels = tuple(labels)
        self._keys: dict[str, tuple[str, ...]] = {
            label: tuple(
                dict.fromkeys(label_key(s) for s in (label, *(aliases or {}).get(label, ())))
            )
            for label in self.labels
        }
        self._all = {key for keys in self._keys.values() for key in keys}

    def is_label(self, value: object) -> bool:
        return isinstance(value, str) and (
            label_key(value) in self._all or label_stem(value) in self._all
        )

    def find(self, grid: Grid, label: str) -> Spot | None:
        """First cell (row by row) that is the label exactly, else first whose stem is."""
        keys = self._keys[label]
        for places in grid.label_places:
            found = [places[key] for key in keys if key in places]
            if found:
                return Spot(label, grid.range_of(*min(found)))
        return None


def value_right_of(grid: Grid, spot: Spot, labels: Labels) -> CellValue | None:
    """The first non-blank cell right of the label on its (top) row, skipping the label's own
    merged cells; None when the next thing to the right is another label."""
    top, _, _, right = spot.range
    for _, value in grid.row_after(top, right):
        return None if labels.is_label(value) else value
    return None


# --- reading a form ------------------------------------------------------------------------


@dataclass(frozen=True)
class FormValues:
    """What a form says. `values` holds every label found (None when nothing is written right
    of it); `missing` the labels found nowhere; `problems` why the workbook was not read."""

    values: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    problems: tuple[WorkbookProblem, ...] = ()
    grid: Grid | None = None
    spots: dict[str, Spot] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def grid_from_calamine(sheet: Any) -> Grid:
    """The same Grid from python-calamine (Rust; ~40× faster than a full openpyxl load, and it
    keeps merged ranges). Numbers come as floats and dates as dates, so both are made what
    openpyxl gives (int, datetime)."""
    cells: dict[tuple[int, int], CellValue] = {}
    for r, row in enumerate(sheet.to_python(skip_empty_area=False)[:MAX_ROWS]):
        for c, raw in enumerate(row[:MAX_COLUMNS]):
            value = raw
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            elif isinstance(value, date) and not isinstance(value, datetime):
                value = datetime(value.year, value.month, value.day)
            value = _clean(value)
            if value is not None:
                cells[(r + 1, c + 1)] = value
    merged = tuple(
        (a[0] + 1, a[1] + 1, b[0] + 1, b[1] + 1)
        for a, b in (sheet.merged_cell_ranges or ())
        if a[0] < MAX_ROWS and a[1] < MAX_COLUMNS
    )
    return Grid(sheet.name, cells, merged)


# A tag's attributes end at the first '>' outside quotes: a quoted '>' or a quoted "r='A1'"
# inside another attribute must not end the tag or pass for its reference.
_SHEET_TAG = re.compile(
    rb"""<(?:[^\s<>/!?:=\x22\x27]+:)?(row|c|mergeCell)\b((?:[^>"']|"[^"]*"|'[^']*')*)>""",
    re.IGNORECASE,
)
_ATTR_PAIR = re.compile(rb"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_MERGE_REF = re.compile(rb"([A-Za-z]{1,3})(\d{1,7})(?::([A-Za-z]{1,3})(\d{1,7}))?")
_REF_VALUE = re.compile(rb"([A-Za-z]{0,3})(\d{0,7})")
UNREADABLE_MERGE = 10**9  # a merged range whose reference can't be read counts as too large


def _attribute(attrs: bytes, name: bytes) -> bytes | None:
    """The value of the attribute named exactly `name` (no prefix), as an XML parser reads it."""
    for key, double, single in _ATTR_PAIR.findall(attrs):
        if key == name:
            return (double or single).strip().replace(b"$", b"")
    return None


_CHAR_REF = re.compile(rb"&#(x[0-9A-Fa-f]{1,32}|[0-9]{1,32});")  # leading zeros count


def _char(match: re.Match[bytes]) -> bytes:
    code = match.group(1)
    value = int(code[1:], 16) if code[:1] in (b"x", b"X") else int(code)
    return chr(value).encode("utf-8", "replace") if value < 0x110000 else b"?"


@dataclass(frozen=True)
class Extent:
    """How far a sheet reaches and how many cells it has, counted as a reader places them: a
    reference is read in any letter case, and a row or cell without one takes the next
    position, as Excel, openpyxl and calamine all do. `cells` counts what a reader makes an
    object for: each cell, each row, and every cell a merged range covers."""

    rows: int = 0
    columns: int = 0
    cells: int = 0
    shared_refs: int = 0
    longest_shared: int = 0


@lru_cache(maxsize=1024)
def _column(letters: bytes) -> int:
    """openpyxl is imported only here and for the rare workbook calamine cannot read: the
    intake reads forms without loading it (a tenth of a second at every command's start)."""
    from openpyxl.utils import column_index_from_string

    return column_index_from_string(letters.decode().upper())


def sheet_extent(xml: bytes) -> Extent:
    """The extent of one worksheet part, from its tags alone (no XML parser, no allocation
    per cell): what decides whether a reader may open it. A reference written with character
    references (`&#88;FD1`) is read as the XML parser reads it; a prefixed `x:r` is not a
    reference, as for the readers. Comments, CDATA and processing instructions are taken out
    first (a quote inside one would hide the real tags after it); one left open counts as
    too many cells."""
    markup = _markup(xml)
    if markup is None:
        return Extent(cells=UNREADABLE_MERGE)
    row = col = max_row = max_col = cells = shared = 0
    for match in _SHEET_TAG.finditer(markup):
        tag, attrs = match.group(1).lower(), match.group(2)
        if b"&#" in attrs:
            attrs = _CHAR_REF.sub(_char, attrs)
        if tag == b"mergecell":
            value = _attribute(attrs, b"ref")
            merged = _MERGE_REF.fullmatch(value) if value is not None else None
            if value is not None and merged is None:
                cells += UNREADABLE_MERGE
            if merged:
                left, top, right, bottom = merged.groups()
                right, bottom = right or left, bottom or top
                cols = sorted(_column(c) for c in (left, right))
                rows = sorted(int(r) for r in (top, bottom))
                cells += (cols[1] - cols[0] + 1) * (rows[1] - rows[0] + 1) - 1
                max_row, max_col = max(max_row, rows[1]), max(max_col, cols[1])
            continue
        value = kind = None
        for key, double, single in _ATTR_PAIR.findall(attrs):
            if key == b"r" and value is None:
                value = (double or single).strip().replace(b"$", b"")
            elif key == b"t" and kind is None:
                kind = (double or single).strip().replace(b"$", b"")
        ref = _REF_VALUE.fullmatch(value) if value is not None else None
        cells += 1
        if tag == b"row":
            row = int(ref.group(2)) if ref and ref.group(2) else row + 1
            col = 0
        else:
            if kind == b"s":
                shared += 1
            if ref and ref.group(1):
                col = _column(ref.group(1))
            else:
                col += 1
            if ref and ref.group(2):
                row = int(ref.group(2))
            if row < 1:
                row = 1
        if row > max_row:
            max_row = row
        if col > max_col:
            max_col = col
    return Extent(max_row, max_col, cells, shared)


_SHARED_ITEM = re.compile(rb"<(?:[^\s<>/!?:=\x22\x27]+:)?si\b", re.IGNORECASE)


_HIDDEN = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.DOTALL)
_OPENED = re.compile(rb"<!--|<!\[CDATA\[|<\?")


def _markup(xml: bytes) -> bytes | None:
    """The part as an XML parser sees its tags: comments, CDATA sections and processing
    instructions (the XML declaration too) taken out; None when one is never closed."""
    if b"<!" not in xml and b"<?" not in xml:
        return xml
    kept = _HIDDEN.sub(b"", xml)
    return None if _OPENED.search(kept) else kept


def _longest_shared(xml: bytes) -> int:
    """An upper bound of the longest shared string's XML in a part: the gap from one `<si`
    to the next (or to the end), found in one pass whether or not the items are closed."""
    markup = _markup(xml)
    if markup is None:
        return len(xml)
    starts = [m.start() for m in _SHARED_ITEM.finditer(markup)]
    if not starts:
        return 0
    ends = [*starts[1:], len(markup)]
    return max(end - start for start, end in zip(starts, ends, strict=True))


_RELATIONSHIP = re.compile(rb"<(?:[^\s<>/!?:=\x22\x27]+:)?Relationship\b([^>]*)>", re.IGNORECASE)
_OVERRIDE = re.compile(rb"<(?:[^\s<>/!?:=\x22\x27]+:)?Override\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(rb"""\b(Type|Target|PartName|ContentType)\s*=\s*["']([^"']*)["']""")


def _attrs(raw: bytes) -> dict[str, str]:
    return {k.decode(): v.decode("utf-8", "replace") for k, v in _ATTR.findall(raw)}


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, whole: dict[int, bytes]) -> bytes:
    found = whole.get(id(info))
    return archive.read(info) if found is None else found


def _sheet_parts(archive: zipfile.ZipFile, whole: dict[int, bytes]) -> list[zipfile.ZipInfo]:
    """Every part a reader may open as a worksheet: those under xl/worksheets/, and any part
    a relationship (from any .rels) or a content-type override names as one, wherever it
    lies: a sheet moved to xl/data/x.xml is still read. Parts named alike (`inspect` refuses
    them) are all counted."""
    by_name: dict[str, list[zipfile.ZipInfo]] = {}
    for info in archive.infolist():
        by_name.setdefault(_part_key(info.filename), []).append(info)
    wanted = {n for n in by_name if n.startswith("xl/worksheets/") and n.endswith(".xml")}
    for name, infos in by_name.items():
        for info in infos:
            if name.endswith(".rels"):
                base = posixpath.dirname(posixpath.dirname(name))
                for match in _RELATIONSHIP.finditer(_read(archive, info, whole)):
                    attrs = _attrs(match.group(1))
                    if "worksheet" in attrs.get("Type", "").lower() and attrs.get("Target"):
                        target = attrs["Target"].replace("\\", "/")
                        path = target.lstrip("/") if target.startswith("/") else f"{base}/{target}"
                        wanted.add(posixpath.normpath(path).lstrip("/").lower())
            elif name == CONTENT_TYPES_PART.lower():
                for match in _OVERRIDE.finditer(_read(archive, info, whole)):
                    attrs = _attrs(match.group(1))
                    if "worksheet" in attrs.get("ContentType", "").lower():
                        wanted.add(attrs.get("PartName", "").lstrip("/").lower())
    return [info for name in sorted(wanted) for info in by_name.get(name, [])]


def workbook_extent(archive: zipfile.ZipFile, whole: dict[int, bytes] | None = None) -> Extent:
    """The largest reach and the total cell count over every worksheet part; the cells that
    name a shared string, and the longest shared string in any other part (wherever a
    relationship may have moved the shared strings). `whole`: parts already read whole."""
    whole = {} if whole is None else whole
    rows = columns = cells = shared = 0
    sheets = _sheet_parts(archive, whole)
    for info in sheets:
        extent = sheet_extent(_read(archive, info, whole))
        rows, columns = max(rows, extent.rows), max(columns, extent.columns)
        cells += extent.cells
        shared += extent.shared_refs
    longest = max(
        (_longest_shared(_read(archive, i, whole)) for i in archive.infolist() if i not in sheets),
        default=0,
    )
    return Extent(rows, columns, cells, shared, longest)


_EXTENTS: dict[bytes, Extent] = {}
_EXTENTS_KEPT = 4
_EXTENTS_LOCK = threading.Lock()


def _extent_of(
    data: bytes, archive: zipfile.ZipFile | None = None, whole: dict[int, bytes] | None = None
) -> Extent:
    """`workbook_extent` of a workbook's bytes (`archive`: the one `inspect` has open on them,
    with the parts it read whole); `inspect` and the choice of reader both need it, and
    scanning every sheet's XML was most of opening a form, so the last few are kept."""
    with _EXTENTS_LOCK:
        kept = _EXTENTS.get(data)
    if kept is not None:
        return kept
    if archive is None:
        with zipfile.ZipFile(io.BytesIO(data)) as opened:
            extent = workbook_extent(opened)
    else:
        extent = workbook_extent(archive, whole)
    with _EXTENTS_LOCK:
        _EXTENTS[data] = extent
        while len(_EXTENTS) > _EXTENTS_KEPT:
            del _EXTENTS[next(iter(_EXTENTS))]
    return extent


def _small_enough_for_calamine(data: bytes) -> bool:
    """calamine keeps a sheet as a dense rectangle from A1 to its last cell, so one cell at
    XFD1048576 would ask for billions of cells (and a Rust allocation failure aborts the
    process). Only sheets whose cells all lie inside the form area go to it."""
    try:
        extent = _extent_of(data)
    except Exception:
        return False
    return extent.rows <= MAX_ROWS * 4 and extent.columns <= MAX_COLUMNS * 4


def load_grids(data: bytes, filename: str = "") -> tuple[list[Grid], WorkbookProblem | None]:
    """Every sheet of the workbook as a Grid, or the problem that stopped the reader.
    Call only after `inspect` found nothing. python-calamine reads it when it safely can;
    anything else goes to openpyxl (with defusedxml), whose refusal names the problem."""
    if _small_enough_for_calamine(data):
        try:
            book = CalamineWorkbook.from_filelike(io.BytesIO(data))
            return [grid_from_calamine(book.get_sheet_by_name(n)) for n in book.sheet_names], None
        except Exception:
            log.debug("%s: python-calamine could not read it; trying openpyxl", filename)
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(data), data_only=True, keep_links=False)
            try:
                return [grid_from_openpyxl(ws) for ws in book.worksheets], None
            finally:
                book.close()
    except Exception as exc:  # a hostile workbook may break openpyxl anywhere; none may escape
        cause = _defused_cause(exc)
        if cause is not None:
            return [], problem(XML_DTD, filename, f"openpyxl: {type(cause).__name__}")
        return [], problem(UNREADABLE, filename, f"openpyxl: {type(exc).__name__}: {exc}")


def _defused_cause(exc: BaseException) -> BaseException | None:
    """openpyxl re-raises parse errors as its own; defusedxml's refusal is in the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DefusedXmlException):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _best_grid(grids: Sequence[Grid], labels: Labels) -> Grid | None:
    """The sheet carrying most of the labels (the first on a tie): the form may sit behind an
    instructions sheet, or next to a copy of the example."""
    best, best_count = None, 0
    for grid in grids:
        count = sum(labels.find(grid, label) is not None for label in labels.labels)
        if count > best_count:
            best, best_count = grid, count
    return best


@dataclass(frozen=True)
class OpenedBook:
    """A workbook inspected and read into grids, before any label is looked for: the costly,
    pure part of reading a form, which the read-ahead worker does on the second core."""

    limits: Limits
    problems: tuple[WorkbookProblem, ...] = ()
    grids: tuple[Grid, ...] = ()


def open_book(data: bytes, filename: str = "", limits: Limits = DEFAULT_LIMITS) -> OpenedBook:
    """`inspect`, then (if it found nothing) every sheet as a Grid with its labels' places found;
    never raises."""
    problems = inspect(filename, data, limits)
    if problems:
        return OpenedBook(limits, tuple(problems))
    grids, failure = load_grids(data, filename)
    if failure is not None:
        return OpenedBook(limits, (failure,))
    for grid in grids:
        grid.label_places  # noqa: B018 - built here so that it travels with the grid
    return OpenedBook(limits, grids=tuple(grids))


def read_form(
    data: bytes,
    labels: Sequence[str],
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
    filename: str = "",
    form_name: str = "申込書",
    limits: Limits = DEFAULT_LIMITS,
    opened: OpenedBook | None = None,
) -> FormValues:
    """Each label's value: the first non-blank cell right of it on the sheet that carries most
    of the labels. Runs `inspect` first whatever the caller did (`opened`, read ahead under the
    same limits, stands for that); never raises."""
    return _read_labels(data, Labels(labels, aliases), filename, form_name, limits, opened)


def _read_labels(
    data: bytes,
    labels: Labels,
    filename: str,
    form_name: str,
    limits: Limits,
    opened: OpenedBook | None,
) -> FormValues:
    book = opened if opened is not None and opened.limits == limits else None
    if book is None:
        book = open_book(data, filename, limits)
    if book.problems:
        return FormValues(problems=book.problems, missing=labels.labels)
    return values_from_grids(book.grids, labels, filename=filename, form_name=form_name)


def values_from_grids(
    grids: Sequence[Grid], labels: Labels, *, filename: str = "", form_name: str = "申込書"
) -> FormValues:
    grid = _best_grid(grids, labels)
    if grid is None:
        detail = f"none of {len(labels.labels)} labels on {len(grids)} sheets"
        return FormValues(
            problems=(problem(NOT_FORM, filename, detail, form=form_name),),
            missing=labels.labels,
        )
    values: dict[str, Any] = {}
    spots: dict[str, Spot] = {}
    for label in labels.labels:
        spot = labels.find(grid, label)
        if spot is not None:
            spots[label] = spot
            values[label] = value_right_of(grid, spot, labels)
    missing = tuple(label for label in labels.labels if label not in spots)
    return FormValues(values=values, missing=missing, grid=grid, spots=spots)


def table_rows(grid: Grid, spot: Spot, labels: Labels) -> list[dict[str, CellValue]]:
    """The rows of a table whose header row starts at the label (ライセンス情報: ライセンス区分,
    登録・承認番号, …), down to the first blank row or the next known label. Each row maps the
    header's stem to the first value under its columns."""
    top, left, bottom, _ = spot.range
    headers: list[tuple[str, int, int]] = [(spot.label, left, spot.range[3])]
    for col, value in grid.row_after(top, spot.range[3]):
        if isinstance(value, str):
            _, first, _, last = grid.range_of(top, col)
            headers.append((label_stem(value), first, last))
    span_end = headers[-1][2]
    rows: list[dict[str, CellValue]] = []
    for row in range(bottom + 1, bottom + 1 + MAX_TABLE_ROWS):
        line = [grid.value(row, col) for col in range(left, span_end + 1)]
        if all(v is None for v in line) or any(labels.is_label(v) for v in line):
            break
        entry: dict[str, CellValue] = {}
        for header, first, last in headers:
            value = next(
                (v for c in range(first, last + 1) if (v := grid.value(row, c)) is not None), None
            )
            if value is not None:
                entry[header] = value
        rows.append(entry)
    return rows


def license_categories(grid: Grid, spot: Spot, labels: Labels) -> list[str]:
    """The ライセンス区分 column of the ライセンス情報 table, canonical where recognised
    (区分なし(需要抑制) → 区分なし（需要抑制）), else as written so a problem can quote it."""
    out: list[str] = []
    for row in table_rows(grid, spot, labels):
        value = row.get(spot.label)
        if value is None:
            continue
        text = str(value)
        out.append(fields.license_category(text) or text)
    return out


_MARKS = frozenset({"○", "〇", "◯", "●", "◎", "✓", "✔", "☑", "レ", "x", "X", "1", "有", "該当"})
_MARK_AROUND = re.compile(r"^(?P<pre>[○〇◯●◎✓✔☑レ]?)(?P<area>.+?)(?P<post>[○〇◯●◎✓✔☑]?)$")


def is_mark(value: object) -> bool:
    """A cell that ticks a choice: ○ 〇 ● ◎ ✓ ☑ レ x 1 (or TRUE). × and ✕ are not: on a
    Japanese form they mean "not this one"."""
    if value is True:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 1
    return isinstance(value, str) and label_key(value) in _MARKS


def _area_cell(value: object) -> tuple[str | None, bool]:
    """(area, ticked in the same cell): `東京`, `東京エリア`, `○東京`, `東京 ✓`."""
    if not isinstance(value, str):
        return None, False
    match = _MARK_AROUND.match(label_key(value))
    if match is None:
        return None, False
    area = fields.area_name(match["area"])
    return area, area is not None and bool(match["pre"] or match["post"])


_LIST_SPLIT = re.compile(r"[、,，・/／\s]+")


def marked_areas(
    grid: Grid, spot: Spot, choices: Sequence[str] = fields.NEGAWATT_AREAS
) -> list[str]:
    """ネガワット事業対象エリア: the areas ticked in the row under (or beside) the printed area
    names; if nothing is ticked but the participant kept only some names, those; if the names
    are not printed, the areas written as a list (`東京、中部`) right of the label."""
    top, _, bottom, right = spot.range
    for header_row in range(top, bottom + 2):
        named = [(col, *_area_cell(value)) for col, value in grid.row_after(header_row, right)]
        named = [(col, area, ticked) for col, area, ticked in named if area in choices]
        if not named:
            continue
        mark_rows = [header_row + 1] + ([header_row - 1] if header_row > top else [])
        ticked = [
            area
            for col, area, in_cell in named
            if in_cell or any(is_mark(grid.value(r, col)) for r in mark_rows)
        ]
        if ticked:
            return list(dict.fromkeys(ticked))
        listed = list(dict.fromkeys(area for _, area, _ in named))
        return [] if len(listed) == len(choices) else listed
    written: list[str] = []
    for row in range(top, bottom + 2):
        for _, value in grid.row_after(row, right):
            for part in _LIST_SPLIT.split(str(value)):
                area = fields.area_name(part)
                if area in choices and area not in written:
                    written.append(area)
    return written


# --- the forms as data (rules/forms.toml) --------------------------------------------------

VALUE = "value"
LICENSES = "licenses"
AREAS = "areas"
FIELD_KINDS = (VALUE, LICENSES, AREAS)
REQUIRED_FORMS = ("operator_master", "plant_master")
_FORM_KEYS = {"name", "aliases", "fields"}
_FIELD_KEYS = {"label", "aliases", "required", "kind", "required_for_license", "expected"}


@dataclass(frozen=True)
class FieldRule:
    """One labelled field. `required_for_license` makes it required only when the form applies
    for that license (ネガワット事業対象エリア for 区分なし（需要抑制））; `expected` is the
    only value the procedure accepts (申請区分 新規, 電圧種別 低圧, …)."""

    label: str
    required: bool = False
    kind: str = VALUE
    aliases: tuple[str, ...] = ()
    required_for_license: str | None = None
    expected: str | int | date | None = None


@dataclass(frozen=True)
class FormRule:
    id: str
    name: str
    aliases: tuple[str, ...]
    fields: tuple[FieldRule, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The form's name and its other spellings (マスター), for picking the attachment."""
        return (self.name, *self.aliases)

    @cached_property
    def labels(self) -> Labels:
        """Built once per loaded rules file, not once per mail."""
        return Labels([f.label for f in self.fields], {f.label: f.aliases for f in self.fields})

    def rule_for(self, label: str) -> FieldRule:
        return next(f for f in self.fields if f.label == label)


@dataclass(frozen=True)
class FormRules:
    forms: Mapping[str, FormRule]

    def __getitem__(self, form_id: str) -> FormRule:
        return self.forms[form_id]


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise ConfigError(where, "must be a list of non-empty strings")
    return tuple(value)


def _table(raw: object, where: str, known: Iterable[str]) -> dict[str, Any]:
    """A rules table with only the keys it may have."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", f"unknown key (known: {sorted(known)})")
    return raw


def _required_text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}", "required, a non-empty string")
    return value


def _field_rule(item: object, where: str) -> FieldRule:
    raw = _table(item, where, _FIELD_KEYS)
    label = _required_text(raw, "label", where)
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise ConfigError(f"{where}.required", "must be true or false")
    kind = raw.get("kind", VALUE)
    if kind not in FIELD_KINDS:
        raise ConfigError(f"{where}.kind", f"must be one of {FIELD_KINDS}, not {kind!r}")
    license_ = raw.get("required_for_license")
    if license_ is not None and license_ not in fields.LICENSE_CATEGORIES:
        raise ConfigError(
            f"{where}.required_for_license", f"must be one of {fields.LICENSE_CATEGORIES}"
        )
    expected = raw.get("expected")
    if expected is not None and (
        isinstance(expected, (bool, datetime)) or not isinstance(expected, (str, int, date))
    ):
        raise ConfigError(f"{where}.expected", "must be a string, an integer or a date")
    return FieldRule(
        label=label,
        required=required,
        kind=kind,
        aliases=_strings(raw.get("aliases", []), f"{where}.aliases"),
        required_for_license=license_,
        expected=expected,
    )


def _form_rule(form_id: str, item: object, where: str) -> FormRule:
    raw = _table(item, where, _FORM_KEYS)
    name = _required_text(raw, "name", where)
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise ConfigError(f"{where}.fields", "required, at least one [[fields]] table")
    rules = tuple(_field_rule(f, f"{where}.fields[{i}]") for i, f in enumerate(raw_fields))
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        keys = {label_key(s) for s in (rule.label, *rule.aliases)}
        if keys & seen:
            raise ConfigError(f"{where}.fields[{i}].label", f"{rule.label}: spelled twice")
        seen |= keys
    return FormRule(form_id, name, _strings(raw.get("aliases", []), f"{where}.aliases"), rules)


def load_form_rules(path: Path) -> FormRules:
    """Read and check `rules/forms.toml`; a mistake names the file and the key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read the form rules: {exc}") from exc
    forms = {
        form_id: _form_rule(form_id, table, f"{path}: {form_id}") for form_id, table in raw.items()
    }
    for form_id in REQUIRED_FORMS:
        if form_id not in forms:
            raise ConfigError(f"{path}: {form_id}", "missing: the procedures read this form")
    return FormRules(forms)


def read_form_fields(
    data: bytes,
    form: FormRule,
    *,
    filename: str = "",
    limits: Limits = DEFAULT_LIMITS,
    opened: OpenedBook | None = None,
) -> FormValues:
    """`read_form` driven by a FormRule: value fields as cells, `licenses` fields as the list of
    ライセンス区分 rows, `areas` fields as the list of ticked areas."""
    labels = form.labels
    result = _read_labels(data, labels, filename, form.name, limits, opened)
    if result.grid is None:
        return result
    values = dict(result.values)
    for rule in form.fields:
        spot = result.spots.get(rule.label)
        if spot is None:
            continue
        if rule.kind == LICENSES:
            values[rule.label] = license_categories(result.grid, spot, labels)
        elif rule.kind == AREAS:
            values[rule.label] = marked_areas(result.grid, spot)
    return FormValues(values, result.missing, result.problems, result.grid, result.spots)


FORM_RULES = RulesFile("forms.toml", load_form_rules)
