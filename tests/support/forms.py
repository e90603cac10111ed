"""Excel forms as participants fill them in: the seed's 事業者マスタ申込書 and 発電所マスタ申込書
記載例 layouts, with any value overridable, for tests and the sample mails."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from datetime import datetime

from openpyxl import Workbook

AREA_ROW = ["北海道", "東北", "東京", "中部", "北陸", "関西", "中国", "四国", "九州", "沖縄"]


def to_bytes(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def put(ws, ref: str, value, merge: str | None = None) -> None:
    ws[ref] = value
    if merge:
        ws.merge_cells(f"{ref}:{merge}")


def operator_form(
    *,
    licenses: tuple[str, ...] = ("区分なし(需要抑制)",),
    marks: dict[str, str] | None = None,
    contract_start: object = datetime(2016, 2, 1),
    instructions_first: bool = False,
    fields: dict[str, object] | None = None,
) -> Workbook:
    """The seed's 事業者マスタ申込書記載例: labels in A (merged A:B, ※ notes), values from C
    (merged C:F), 適用終了日 and 連絡者FAX番号 further right on the same row. `fields` replaces
    the example's value of a label."""
    given = fields or {}
    book = Workbook()
    ws = book.active
    if instructions_first:
        ws.title = "記入要領"
        ws["A1"] = "白抜きセルは記載不要です"
        ws["A2"] = "事業者名称は最大25文字（全て半角であれば50文字）です。"
        ws = book.create_sheet("事業者マスタ申請")
    else:
        ws.title = "事業者マスタ申請"
    put(ws, "A1", "事業者マスタ申請", "J1")
    ws["A2"] = "事業者入力項目"
    put(ws, "A3", "申請区分", "B3")
    put(ws, "C3", given.get("申請区分", "新規"), "F3")
    ws["A4"] = "申請内容"
    ws["A5"] = "送配電ライセンス"
    put(ws, "A6", "契約開始日※", "B6")
    put(ws, "C6", given.get("契約開始日", contract_start), "D6")
    put(ws, "E6", "適用終了日※", "F6")
    put(ws, "G6", given.get("適用終了日", "9999/12/31"), "J6")
    put(ws, "A7", "適用開始日※", "B7")
    put(ws, "C7", given.get("適用開始日", "２０１６／０２／０１"), "D7")
    rows = [
        ("事業者名称", "広域電力株式会社"),
        ("事業者名略称", "広域機関_容"),
        ("郵便番号", "１３５－００６１"),
        ("住所", "東京都江東区豊洲6-2-15"),
        ("ドメイン名", "example.co.jp"),
        ("連絡者所属", "電力取引部"),
        ("連絡者氏名", "髙橋 一郎"),
    ]
    for offset, (label, value) in enumerate(rows):
        row = 8 + offset
        put(ws, f"A{row}", label, f"B{row}")
        put(ws, f"C{row}", given.get(label, value), f"J{row}")
    put(ws, "A15", "連絡者電話番号", "B15")
    put(ws, "C15", given.get("連絡者電話番号", "03-1234-5678"), "F15")
    put(ws, "G15", "連絡者FAX番号", "H15")
    put(ws, "A16", "連絡者メール", "B16")
    put(ws, "C16", given.get("連絡者メール", "taro@example.co.jp"), "J16")
    ws["A17"] = "ライセンス情報"
    headers = ["登録・承認番号", "登録・届出年月日", "登録抹消年月日", "同時同量種別※", "計画値"]
    put(ws, "A18", "ライセンス区分 (1件は必須入力)", "B18")
    for col, header in zip("CDEFG", headers, strict=True):
        ws[f"{col}18"] = header
    for offset, license_name in enumerate(licenses):
        put(ws, f"A{19 + offset}", license_name, f"B{19 + offset}")
    area_row = 19 + len(licenses) + 1
    put(
        ws,
        f"A{area_row}",
        "ネガワット事業対象エリア (ネガワット事業者のみ回答)",
        f"B{area_row + 1}",
    )
    for col, area in zip("CDEFGHIJKL", AREA_ROW, strict=True):
        ws[f"{col}{area_row}"] = area
        if marks and area in marks:
            ws[f"{col}{area_row + 1}"] = marks[area]
    return book


def plant_form(fields: dict[str, object] | None = None) -> Workbook:
    """The seed's 発電所マスタ申込書記載例 for an aggregator: label pairs on one row. `fields`
    replaces the example's value of a label."""
    given = fields or {}
    book = Workbook()
    ws = book.active
    ws.title = "発電所マスタ申請"
    ws["A1"] = "発電所マスタ申請"
    ws["A2"] = "事業者入力項目"
    pairs = [
        ("申請区分", "新規", None, None),
        ("電源所属エリア名", "東京", "電源種別", "非調整電源"),
        ("電圧種別", "低圧", None, None),
        ("契約開始日", datetime(2020, 3, 1), "適用終了日", None),
        ("適用開始日", "2020/03/01", None, None),
        ("同時最大受電電力", "999,999,999kW", None, None),
        ("発電所名", "広域電力株式会社", None, None),
        ("発電所名略称", "アグリ1234301", None, None),
        ("事業者コード(発電所所有者)", "12343", "事業者名称(発電所所有者)", "広域電力株式会社"),
        ("郵便番号", "135-0061", None, None),
        ("住所(発電所所在地)", "東京都江東区豊洲6-2-15", None, None),
        ("連絡者所属", "電力取引部", None, None),
        ("連絡者氏名", "高橋一郎", None, None),
        ("連絡者電話番号", "03-1234-5678", "連絡者FAX番号", "03-1234-5679"),
        ("連絡者メール", "taro@example.co.jp", None, None),
    ]
    for offset, (left, left_value, right, right_value) in enumerate(pairs):
        row = 3 + offset
        ws[f"A{row}"] = left
        ws[f"C{row}"] = given.get(left, left_value)
        if right:
            ws[f"E{row}"] = right
            ws[f"G{row}"] = given.get(right, right_value)
    ws["A20"] = "所属事業者情報"
    ws["A21"] = "所属事業者コード"
    ws["E21"] = "所属事業者名称"
    ws["J5"] = "【非調整電源】を選択してください。"
    return book


ROADMAP_COLUMNS = ("応札年度", "2020年代", "2030年代", "2040年代", "2050年度")


def roadmap_workbook(
    premises: str = "", columns: tuple[str, ...] | list[str] = ROADMAP_COLUMNS
) -> bytes:
    """The seed's 図3-3 roadmap sheet with the given 前提条件 text (default: all five items)."""
    premises = premises or ROADMAP_PREMISES
    wb = Workbook()
    ws = wb.active
    ws["A1"] = "△△発電所 1号機の脱炭素化ロードマップ"
    for i, heading in enumerate(columns, start=2):
        ws.cell(row=3, column=i, value=heading)
    ws["A4"], ws["A5"], ws["A6"] = "<電源>\n△△発電所 1号機", "<燃料種>\nLNG", "<前提条件>"
    ws["B6"] = premises
    return to_bytes(wb)


ROADMAP_PREMISES = (
    "建設工事の期間は環境アセスを含め2024〜2028年度。2030年代に水素混焼率10%、"
    "2040年代に脱炭素比率50%で運転開始。改修投資は2031年度の長期脱炭素電源オークションで落札を想定。"
    "燃料はブルー水素、その後グリーン水素。前提条件：水素サプライチェーンの整備。"
)


def rezip(
    data: bytes,
    add: dict[str, bytes] | None = None,
    replace: Callable[[str, bytes], bytes | None] | None = None,
    rename: dict[str, str] | None = None,
) -> bytes:
    """The same zip with parts added, their bytes replaced (None drops the part) or renamed."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            body = src.read(info)
            if replace:
                body = replace(info.filename, body)
            if body is not None:
                dst.writestr((rename or {}).get(info.filename, info.filename), body)
        for name, body in (add or {}).items():
            dst.writestr(name, body)
    return out.getvalue()
