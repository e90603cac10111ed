"""Excel forms: the safety check on hostile attachments, label-based reading of the seed's
事業者マスタ申込書 and 発電所マスタ申込書 layouts, and rules/forms.toml."""

from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError
from mailbot.forms import workbook as wb
from tests.support.forms import AREA_ROW, operator_form, plant_form, put, rezip, to_bytes

RULES = RULES_DIR / "forms.toml"
FORMS = wb.load_form_rules(RULES)


PLAIN = to_bytes(operator_form())


# --- hostile attachments -------------------------------------------------------------------


def macro_bin() -> bytes:
    return rezip(PLAIN, add={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0" + b"\0" * 512})


def macro_content_type() -> bytes:
    def swap(name: str, body: bytes) -> bytes:
        if name == "[Content_Types].xml":
            return body.replace(b"spreadsheetml.sheet.main+xml", b"sheet.macroEnabled.main+xml")
        return body

    return rezip(PLAIN, replace=swap)


def legacy_xls() -> bytes:
    name = "Workbook".encode("utf-16-le")
    return wb.OLE2_MAGIC + b"\0" * 504 + name + b"\0" * 1024


def encrypted_xlsx() -> bytes:
    """Excel's "encrypt with password" wraps the xlsx in an OLE2 file with these streams."""
    streams = b"".join(s.encode("utf-16-le") for s in ("EncryptionInfo", "EncryptedPackage"))
    return wb.OLE2_MAGIC + b"\0" * 504 + streams + b"\0" * 1024


def random_bytes() -> bytes:
    return bytes((i * 7919 + 13) % 251 for i in range(4096))


def zip_bomb(megabytes: int = 200) -> bytes:
    """A part of `megabytes` MB of zeros, written streaming (about 200 KB zipped)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with zipfile.ZipFile(io.BytesIO(PLAIN)) as src:
            for info in src.infolist():
                if info.filename != "xl/sharedStrings.xml":
                    archive.writestr(info.filename, src.read(info))
        chunk = b"\0" * (1 << 20)
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            for _ in range(megabytes):
                part.write(chunk)
    return out.getvalue()


def ratio_bomb() -> bytes:
    """Under the total limit, but one part inflates 1000-fold."""
    return zip_bomb(megabytes=20)


def billion_laughs_xml() -> bytes:
    """Nine levels of ten: 10**9 a's if a parser expanded it."""
    entities = ['<!ENTITY a "aaaaaaaaaa">']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        entities.append(f'<!ENTITY {name} "{f"&{prev};" * 10}">')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<!DOCTYPE sst [{''.join(entities)}]>\n"
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
        'uniqueCount="1"><si><t>&i;</t></si></sst>'
    ).encode()


def billion_laughs() -> bytes:
    """Excel keeps cell text in xl/sharedStrings.xml (openpyxl writes inline strings, so the
    part and its content type are added here)."""
    override = (
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml" /></Types>'
    )

    def declare(name: str, body: bytes) -> bytes:
        return body.replace(b"</Types>", override) if name == "[Content_Types].xml" else body

    return rezip(PLAIN, add={"xl/sharedStrings.xml": billion_laughs_xml()}, replace=declare)


def traversal() -> bytes:
    return rezip(PLAIN, add={"../../etc/cron.d/evil": b"* * * * * root true"})


def not_a_workbook() -> bytes:
    """A Word document, say: a zip without xl/workbook.xml."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/document.xml", b"<document/>")
    return out.getvalue()


def truncated() -> bytes:
    return PLAIN[: len(PLAIN) // 2]


def encrypted_parts() -> bytes:
    """Zip-level encryption (flag bit 0) set on every part, as a zip tool's password does."""
    data = bytearray(PLAIN)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 0x1
            start = data.find(signature, start + 4)
    return bytes(data)


def too_many_parts() -> bytes:
    return rezip(PLAIN, add={f"xl/media/image{i}.png": b"\x89PNG" for i in range(1001)})


def garbage_workbook_xml() -> bytes:
    return rezip(PLAIN, replace=lambda n, b: b"<workbook><sheets>" if n == "xl/workbook.xml" else b)


def no_labels() -> bytes:
    book = Workbook()
    book.active["A1"] = "売上集計"
    book.active["B2"] = 1200
    return to_bytes(book)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return zip_bomb()


HOSTILE = [
    ("empty", lambda: b"", wb.EMPTY),
    ("macro part in a .xlsx", macro_bin, wb.MACRO),
    ("macroEnabled content type, no part", macro_content_type, wb.MACRO),
    ("legacy .xls", legacy_xls, wb.LEGACY_XLS),
    ("password-encrypted .xlsx", encrypted_xlsx, wb.ENCRYPTED),
    ("random bytes", random_bytes, wb.NOT_ZIP),
    ("zip truncated", truncated, wb.BROKEN_ZIP),
    ("part ratio 1000", ratio_bomb, wb.ZIP_BOMB),
    ("billion laughs sharedStrings", billion_laughs, wb.XML_DTD),
    ("../ part name", traversal, wb.UNSAFE_PART_NAME),
    ("docx, not a workbook", not_a_workbook, wb.NOT_WORKBOOK),
    ("zip-encrypted parts", encrypted_parts, wb.ENCRYPTED),
    ("1001 parts", too_many_parts, wb.TOO_MANY_PARTS),
]


@pytest.mark.parametrize(("case", "make", "kind"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_inspect_names_each_hostile_attachment(case: str, make, kind: str) -> None:
    problems = wb.inspect("事業者マスタ申込書.xlsx", make())
    assert kind in [p.kind for p in problems], case
    assert all("「事業者マスタ申込書.xlsx」" in p.message for p in problems)


@pytest.mark.parametrize(("case", "make", "kind"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_read_form_refuses_hostile_attachments_without_raising(case: str, make, kind) -> None:
    result = wb.read_form_fields(make(), FORMS["operator_master"], filename="a.xlsx")
    assert not result.ok
    assert kind in [p.kind for p in result.problems], case
    assert result.values == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(PLAIN) - 1), st.integers(0, 255)), max_size=8))
def test_damaged_workbooks_never_raise(flips: list[tuple[int, int]]) -> None:
    data = bytearray(PLAIN)
    for offset, byte in flips:
        data[offset] = byte
    result = wb.read_form_fields(bytes(data), FORMS["operator_master"], filename="a.xlsx")
    assert result.ok or all(p.kind in wb._MESSAGES for p in result.problems)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_never_raise(data: bytes) -> None:
    for candidate in (data, b"PK\x03\x04" + data, wb.OLE2_MAGIC + data):
        assert all(p.kind in wb._MESSAGES for p in wb.inspect("a.xlsx", candidate))
        assert not wb.read_form(candidate, ["申請区分"]).ok


def test_zip_bomb_of_200_mb_is_refused_from_the_directory(bomb: bytes) -> None:
    assert len(bomb) < 1_000_000
    assert [p.kind for p in wb.inspect("a.xlsx", bomb)] == [wb.ZIP_BOMB]
    assert [p.kind for p in wb.read_form(bomb, ["申請区分"]).problems] == [wb.ZIP_BOMB]


def test_too_large_and_the_limit_is_configurable() -> None:
    small = wb.Limits(max_bytes=1000)
    assert [p.kind for p in wb.inspect("a.xlsx", PLAIN, small)] == [wb.TOO_LARGE]
    assert wb.inspect("a.xlsx", PLAIN) == []


def test_macro_message_asks_for_a_plain_xlsx() -> None:
    (found,) = wb.inspect("申込書.xlsx", macro_bin())
    assert "マクロを含むブック（.xlsm 等）" in found.message
    assert "マクロを含まない" in found.message and "お願いいたします" in found.message


def test_hostile_file_name_stays_one_line() -> None:
    (found,) = wb.inspect("a\r\nBcc: x@example.com.xlsx", b"")
    assert "\n" not in found.message and "\r" not in found.message


def test_content_decides_not_the_name() -> None:
    assert wb.inspect("申込書.xls", PLAIN) == []
    assert [p.kind for p in wb.inspect("申込書.xlsx", legacy_xls())] == [wb.LEGACY_XLS]


def test_defused_parser_catches_entities_the_prolog_scan_missed() -> None:
    grids, failure = wb.load_grids(billion_laughs(), "a.xlsx")
    assert grids == []
    assert failure is not None and failure.kind == wb.XML_DTD


def test_unreadable_workbook_becomes_a_problem() -> None:
    result = wb.read_form(garbage_workbook_xml(), ["申請区分"], filename="a.xlsx")
    assert [p.kind for p in result.problems] == [wb.UNREADABLE]


def test_workbook_without_the_form_is_not_the_form() -> None:
    result = wb.read_form_fields(no_labels(), FORMS["operator_master"], filename="a.xlsx")
    assert [p.kind for p in result.problems] == [wb.NOT_FORM]
    assert "事業者マスタ申込書の記入欄" in result.problems[0].message


def test_every_kind_has_a_polite_message() -> None:
    kinds = {k for k in dir(wb) if k.isupper() and isinstance(getattr(wb, k), str)}
    codes = {getattr(wb, k) for k in kinds} & set(wb._MESSAGES)
    assert codes == set(wb._MESSAGES)
    for code in codes:
        message = wb.problem(code, "x.xlsx").message
        assert message.endswith("。") and ("ください" in message or "ません" in message)


# --- reading the seed's forms --------------------------------------------------------------


def test_operator_form_values_by_label() -> None:
    result = wb.read_form_fields(PLAIN, FORMS["operator_master"], filename="a.xlsx")
    assert result.ok and result.missing == ()
    values = result.values
    assert values["申請区分"] == "新規"
    assert values["契約開始日"] == datetime(2016, 2, 1)
    assert values["適用開始日"] == "２０１６／０２／０１"
    assert values["適用終了日"] == "9999/12/31"
    assert values["事業者名略称"] == "広域機関_容"
    assert values["郵便番号"] == "１３５－００６１"
    assert values["連絡者電話番号"] == "03-1234-5678"
    assert values["連絡者FAX番号"] is None
    assert values["連絡者メール"] == "taro@example.co.jp"
    assert values["ライセンス区分"] == ["区分なし（需要抑制）"]
    assert values["ネガワット事業対象エリア"] == []
    assert result.spots["契約開始日"].coordinate == "A6"


def test_form_behind_an_instructions_sheet() -> None:
    data = to_bytes(operator_form(instructions_first=True))
    result = wb.read_form_fields(data, FORMS["operator_master"])
    assert result.grid is not None and result.grid.title == "事業者マスタ申請"
    assert result.values["事業者名称"] == "広域電力株式会社"


def test_empty_value_is_not_the_next_label() -> None:
    data = to_bytes(operator_form(contract_start=None))
    assert wb.read_form_fields(data, FORMS["operator_master"]).values["契約開始日"] is None


def test_several_licenses_until_the_next_label() -> None:
    data = to_bytes(operator_form(licenses=("発電", "小売", "区分なし（需要抑制）", "送配電")))
    values = wb.read_form_fields(data, FORMS["operator_master"]).values
    assert values["ライセンス区分"] == ["発電", "小売", "区分なし（需要抑制）", "送配電"]


@pytest.mark.parametrize(
    ("marks", "areas"),
    [
        ({"東京": "○", "中部": "〇"}, ["東京", "中部"]),
        ({"沖縄": "✓"}, ["沖縄"]),
        ({"北海道": "1", "九州": "レ"}, ["北海道", "九州"]),
        ({"関西": "●", "四国": "x"}, ["関西", "四国"]),
        ({"東京": "○", "東北": "×"}, ["東京"]),
        ({}, []),
    ],
)
def test_negawatt_areas_by_mark(marks: dict[str, str], areas: list[str]) -> None:
    data = to_bytes(operator_form(marks=marks))
    assert (
        wb.read_form_fields(data, FORMS["operator_master"]).values["ネガワット事業対象エリア"]
        == areas
    )


def negawatt_grid(cells: dict[tuple[int, int], object]) -> tuple[wb.Grid, wb.Spot]:
    label = "ネガワット事業対象エリア"
    grid = wb.Grid("s", {(1, 1): label, **cells}, merged=((1, 1, 2, 2),))
    return grid, wb.Spot(label, (1, 1, 2, 2))


@pytest.mark.parametrize(
    ("cells", "areas"),
    [
        ({(1, 3): "東京、中部エリア"}, ["東京", "中部"]),
        ({(1, 3): "東京", (1, 4): "関西"}, ["東京", "関西"]),
        ({(1, 3): "○東京", (1, 4): "中部"}, ["東京"]),
        ({(1, 3): "東京エリア ✓", (1, 4): "中部エリア"}, ["東京"]),
        ({(2, 3 + i): a for i, a in enumerate(AREA_ROW)} | {(3, 5): "○"}, ["東京"]),
    ],
)
def test_negawatt_areas_listed_or_ticked_in_place(cells, areas: list[str]) -> None:
    grid, spot = negawatt_grid(cells)
    assert wb.marked_areas(grid, spot) == areas


def test_plant_form_label_pairs_on_one_row() -> None:
    result = wb.read_form_fields(to_bytes(plant_form()), FORMS["plant_master"])
    assert result.ok and result.missing == ()
    values = result.values
    assert values["電源所属エリア名"] == "東京"
    assert values["電源種別"] == "非調整電源"
    assert values["電圧種別"] == "低圧"
    assert values["契約開始日"] == datetime(2020, 3, 1)
    assert values["適用終了日"] is None
    assert values["同時最大受電電力"] == "999,999,999kW"
    assert values["発電所名"] == "広域電力株式会社"
    assert values["発電所名略称"] == "アグリ1234301"
    assert values["事業者コード(発電所所有者)"] == "12343"
    assert values["事業者名称(発電所所有者)"] == "広域電力株式会社"
    assert values["住所(発電所所在地)"] == "東京都江東区豊洲6-2-15"
    assert values["連絡者FAX番号"] == "03-1234-5679"
    assert values["所属事業者コード"] is None


def test_plain_labels_with_notes_and_widths() -> None:
    book = Workbook()
    ws = book.active
    ws["B2"] = "＊ 事業者名称 ："
    ws["F2"] = 12345
    ws["B3"] = "契約開始日※1"
    put(ws, "C3", "令和2年3月1日", "E3")
    ws["B4"] = "連絡者ＦＡＸ番号"
    ws["B5"] = "連絡者FAX番号（任意）"
    ws["C5"] = "never read: the exact spelling above wins"
    second = book.create_sheet("Sheet2")
    second["A1"] = "事業者名称"
    result = wb.read_form(to_bytes(book), ["事業者名称", "契約開始日", "連絡者FAX番号", "住所"])
    assert result.values == {
        "事業者名称": 12345,
        "契約開始日": "令和2年3月1日",
        "連絡者FAX番号": None,
    }
    assert result.missing == ("住所",)
    assert result.grid is not None and result.grid.title == "Sheet"


def test_value_merged_down_from_the_row_above() -> None:
    grid = wb.Grid("s", {(1, 1): "住所", (2, 1): "郵便番号", (1, 3): "東京都"}, ((1, 3, 2, 5),))
    labels = wb.Labels(["住所", "郵便番号"])
    spot = labels.find(grid, "郵便番号")
    assert spot is not None and wb.value_right_of(grid, spot, labels) == "東京都"


@pytest.mark.parametrize(
    ("cell", "stem"),
    [
        ("契約開始日※", "契約開始日"),
        ("ライセンス区分 (1件は必須入力)", "ライセンス区分"),
        ("ネガワット事業対象エリア（ネガワット事業者のみ回答）", "ネガワット事業対象エリア"),
        ("同時同量種別※", "同時同量種別"),
        ("事業者コード(発電所所有者)", "事業者コード"),
        ("※ 適用開始日", "適用開始日"),
    ],
)
def test_label_stem(cell: str, stem: str) -> None:
    assert wb.label_stem(cell) == stem


def test_read_is_fast_enough_with_the_bomb(bomb: bytes) -> None:
    """The check reads only the directory: a 200 MB bomb costs nothing to refuse."""
    start = time.perf_counter()
    wb.inspect("a.xlsx", bomb)
    assert time.perf_counter() - start < 0.1


# --- rules/forms.toml ----------------------------------------------------------------------


def test_rules_carry_the_seed_labels() -> None:
    operator = FORMS["operator_master"]
    assert operator.name == "事業者マスタ申込書"
    assert "事業者マスター申込書" in operator.names
    assert [f.label for f in operator.fields][:3] == ["申請区分", "契約開始日", "適用開始日"]
    assert operator.rule_for("連絡者FAX番号").required is False
    assert (
        operator.rule_for("ネガワット事業対象エリア").required_for_license == "区分なし（需要抑制）"
    )
    plant = FORMS["plant_master"]
    assert plant.rule_for("契約開始日").expected == date(2020, 3, 1)
    assert plant.rule_for("同時最大受電電力").expected == 999_999_999
    assert plant.rule_for("電圧種別").expected == "低圧"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "[operator_master]\nname = 'x'\n[[operator_master.fields]]\nlabel = 'a'\nrequried = true\n",
            "operator_master.fields[0].requried",
        ),
        (
            "[operator_master]\nname = 'x'\n[[operator_master.fields]]\nlabel = 'a'\nkind = 'table'\n",
            "operator_master.fields[0].kind",
        ),
        (
            "[operator_master]\nname = 'x'\n[[operator_master.fields]]\nlabel = 'a'\n"
            "[[operator_master.fields]]\nlabel = ' a'\n",
            "operator_master.fields[1].label",
        ),
        ("[operator_master]\nname = 'x'\nfields = []\n", "operator_master.fields"),
        (
            "[operator_master]\nname = 'x'\n[[operator_master.fields]]\nlabel = 'a'\n",
            "plant_master",
        ),
        (
            "[operator_master]\nname = 'x'\n[[operator_master.fields]]\nlabel = 'a'\n"
            "required_for_license = '送配電'\n",
            "operator_master.fields[0].required_for_license",
        ),
        ("[operator_master\n", "forms.toml"),
    ],
)
def test_rules_mistakes_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "forms.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        wb.load_form_rules(path)
    assert str(path) in caught.value.key
    assert caught.value.key.endswith(key)


def _offset_book() -> Workbook:
    book = Workbook()
    ws = book.active
    ws["C5"] = "事業者名称"
    put(ws, "E5", "株式会社髙橋電力", "H6")
    ws["C7"] = 999999999
    ws["D7"] = 12.5
    ws["C8"] = datetime(2020, 3, 1)
    ws["C9"] = True
    book.create_sheet("空のシート")
    return book


@pytest.mark.parametrize(
    "book",
    [
        operator_form(),
        operator_form(licenses=("発電", "小売"), marks={"東京": "○"}, instructions_first=True),
        plant_form(),
        _offset_book(),
    ],
    ids=["operator", "operator-with-instructions", "plant", "offset"],
)
def test_calamine_and_openpyxl_read_the_same_grid(book: Workbook):
    """python-calamine is used for speed; it must see exactly what openpyxl sees."""
    from openpyxl import load_workbook
    from python_calamine import CalamineWorkbook

    data = to_bytes(book)
    fast = CalamineWorkbook.from_filelike(io.BytesIO(data))
    slow = load_workbook(io.BytesIO(data), data_only=True)
    for name, sheet in zip(fast.sheet_names, slow.worksheets, strict=True):
        a = wb.grid_from_calamine(fast.get_sheet_by_name(name))
        b = wb.grid_from_openpyxl(sheet)
        assert a.title == b.title
        assert a.cells == b.cells
        assert sorted(a.merged) == sorted(b.merged)


def test_a_far_away_cell_never_reaches_calamine():
    """calamine would allocate A1:XFD1048576 densely; such a sheet is read by openpyxl."""
    book = operator_form()
    book.active["XFD1048576"] = "罠"
    data = to_bytes(book)
    assert not wb._small_enough_for_calamine(data)
    grids, failure = wb.load_grids(data)
    assert failure is None
    assert grids[0].cells[(1, 1)] == "事業者マスタ申請"
    assert wb._small_enough_for_calamine(to_bytes(operator_form()))


def test_a_small_workbook_whose_cells_all_name_one_long_shared_string_is_not_opened():
    """10,000 cells naming one 32,000-character shared string zip to a few dozen KB and pass
    the cell count, but a reader copies the string into every cell (calamine asked for over a
    gigabyte and ten seconds). The preflight counts what the cells would hold."""
    strings = (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<si><t>発電所名{'あ' * 32_000}</t></si></sst>"
    ).encode()
    cells = b"".join(
        b'<row r="%d">' % r + b'<c t="s"><v>0</v></c>' * 100 + b"</row>" for r in range(1, 101)
    )
    data = rezip(
        PLAIN,
        add={"xl/sharedStrings.xml": strings},
        replace=lambda name, body: (
            re.sub(rb"<sheetData>.*</sheetData>", b"<sheetData>" + cells + b"</sheetData>", body)
            if name == "xl/worksheets/sheet1.xml"
            else body
        ),
    )
    assert len(data) < 100_000
    started = time.perf_counter()
    problems = wb.inspect("form.xlsx", data)
    assert time.perf_counter() - started < 5  # a hang guard, not a timing target
    assert [p.kind for p in problems] == [wb.TOO_MANY_CELLS]
    assert "naming shared strings" in problems[0].detail
    # the real form, whose strings are short, still opens
    assert wb.inspect("form.xlsx", PLAIN) == []


# --- what the preflight sees must be what a reader sees (attacker review, session 6) --------

FAR_CELL = b'<row><c r="XFD1048576" t="inlineStr"><is><t>far</t></is></c></row>'


def _sheet_with(extra: bytes) -> bytes:
    sheet = "xl/worksheets/sheet1.xml"
    return rezip(
        PLAIN,
        replace=lambda n, b: (
            b.replace(b"</sheetData>", extra + b"</sheetData>") if n == sheet else b
        ),
    )


HIDDEN_FAR_CELLS = {
    "behind a quote in a comment": b'<!-- <c x=" -->' + FAR_CELL + b'<!-- " -->',
    "behind a quote in CDATA": b'<row><c t="inlineStr"><is><t><![CDATA[<c x="]]></t></is></c>'
    b"</row>" + FAR_CELL + b'<row><c t="inlineStr"><is><t><![CDATA["]]></t></is></c></row>',
    "behind a quote in a processing instruction": b'<?x <c x=" ?>' + FAR_CELL + b'<?x " ?>',
    "under a non-ASCII prefix": FAR_CELL.replace(
        b"<c ", '<ä:c xmlns:ä="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '.encode()
    ).replace(b"</c>", "</ä:c>".encode()),
}


@pytest.mark.parametrize("how", list(HIDDEN_FAR_CELLS))
def test_a_far_cell_cannot_hide_from_the_preflight(how: str) -> None:
    """calamine keeps a sheet as a rectangle from A1 to its last cell: a cell at XFD1048576
    asks for 549 GB and the process aborts (exit 134). A quote opened inside a comment, CDATA
    or a processing instruction swallowed the real tags after it, and a non-ASCII namespace
    prefix was not matched: the preflight counted 22 rows and handed the book to calamine."""
    data = _sheet_with(HIDDEN_FAR_CELLS[how])
    extent = wb._extent_of(data)
    assert extent.rows >= 1_048_576 and extent.columns == 16_384
    assert not wb._small_enough_for_calamine(data)


def test_a_comment_left_open_counts_as_too_many_cells() -> None:
    """A reader may read past an unclosed comment; the preflight cannot say what it reads."""
    problems = wb.inspect("a.xlsx", _sheet_with(b"<!-- " + FAR_CELL))
    assert [p.kind for p in problems] == [wb.TOO_MANY_CELLS]


def test_a_merge_hidden_in_a_comment_is_counted() -> None:
    hidden = b'<!-- <mergeCell x=" --><mergeCell ref="A1:CV3000"/><!-- " -->'
    data = rezip(
        PLAIN,
        replace=lambda n, b: (
            b.replace(b"</sheetData>", b"</sheetData><mergeCells>" + hidden + b"</mergeCells>")
            if n == "xl/worksheets/sheet1.xml"
            else b
        ),
    )
    assert [p.kind for p in wb.inspect("a.xlsx", data)] == [wb.TOO_MANY_CELLS]


@pytest.mark.parametrize(
    "shadow",
    ["XL/worksheets/sheet1.xml", "xl\\worksheets\\sheet1.xml", "/xl/worksheets/sheet1.xml"],
)
def test_two_parts_named_alike_are_refused(shadow: str) -> None:
    """The preflight matched names case-blind and read the harmless copy; openpyxl opened the
    real part (a merge of 300,000 cells)."""
    with zipfile.ZipFile(io.BytesIO(PLAIN)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml")
    data = rezip(PLAIN, add={shadow: sheet})
    problems = wb.inspect("a.xlsx", data)
    assert {p.kind for p in problems} == {wb.UNSAFE_PART_NAME}
    assert any("two parts named" in p.detail for p in problems)


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_part_compressed_other_than_excel_does_is_refused(method: int) -> None:
    """zipfile inflates bzip2 and LZMA whole before it cuts to the declared size: a 6 KB file
    declaring a 100-byte part took 841 MB."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(PLAIN)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
        dst.writestr("xl/notes.xml", b"<notes/>", compress_type=method)
    problems = wb.inspect("事業者マスタ申込書.xlsx", out.getvalue())
    assert [p.kind for p in problems] == [wb.UNSAFE_COMPRESSION]
    assert "「事業者マスタ申込書.xlsx」" in problems[0].message


def test_a_reference_spelled_with_zero_padded_character_references_is_read() -> None:
    """An XML parser reads &#0000000088; as X whatever the zeros; the preflight must too."""
    cell = b'<row><c r="&#0000000088;FD1048576" t="inlineStr"><is><t>far</t></is></c></row>'
    extent = wb._extent_of(_sheet_with(cell))
    assert extent.rows == 1_048_576 and extent.columns == 16_384
