"""The operators' register (issued 事業者コード and 系統コード) and the contracted sources
(契約電源), loaded from the operator's own CSV/xlsx exports (SPEC §9) and read by the checks.

Importing the same file twice changes nothing: rows are compared and only real changes write.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mailbot.console import progress
from mailbot.errors import MailbotError
from mailbot.forms.fields import (
    is_email,
    is_grid_code,
    normalise_code,
    normalise_postal_code,
    participation_category,
)
from mailbot.store.sqlite import Store
from mailbot.text import name_key, nfkc

OPERATOR_COLUMNS = {
    "事業者コード": "code",
    "事業者名称": "name",
    "事業者名略称": "short_name",
    "郵便番号": "postal_code",
    "住所": "address",
    "ドメイン名": "domain",
    "連絡者メール": "contact_email",
    "ライセンス区分": "licenses",
    "エリア": "areas",
    "系統コード": "grid_codes",
    "発番済系統コード": "issued_grid_codes",
}
OPERATOR_REQUIRED = ("事業者コード", "事業者名称")
SOURCE_COLUMNS = {
    "電源等識別番号": "source_id",
    "事業者コード": "operator_code",
    "事業者名称": "operator_name",
    "担当者": "contact_person",
    "連絡者メール": "contact_email",
    "電源等の名称": "name",
    "容量を提供する電源等の区分": "category",
    "エリア": "area",
    "応札年度": "auction_year",
    "契約容量(kW)": "capacity_kw",
    "供給力提供開始時期": "supply_start_fy",
    "ロードマップ対象": "roadmap_target",
}
SOURCE_REQUIRED = (
    "電源等識別番号",
    "事業者コード",
    "連絡者メール",
    "エリア",
    "応札年度",
    "契約容量(kW)",
    "供給力提供開始時期",
)
LIST_FIELDS = ("licenses", "areas", "grid_codes", "issued_grid_codes")
INT_FIELDS = ("auction_year", "capacity_kw", "supply_start_fy", "roadmap_target")
_CODE = re.compile(r"^[0-9A-Z]{4}$")


class RegisterImportError(MailbotError):
    """A row of an import file is wrong; the message names the file, row and column."""


@dataclass(frozen=True)
class ImportSummary:
    added: int
    changed: int
    unchanged: int


def _header_key(text: str) -> str:
    return re.sub(r"\s+", "", nfkc(str(text or "")))


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8, BOM or not) or the first sheet of an .xlsx, keyed by header."""
    if path.suffix.lower() == ".xlsx":
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise RegisterImportError(f"{path}: not a readable .xlsx workbook ({exc})") from exc
        rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
        wb.close()
    else:
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RegisterImportError(f"{path}: not UTF-8 text (save the CSV as UTF-8)") from exc
        rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c not in (None, "") for c in r)]
    if not rows:
        return []
    header = [_header_key(h) for h in rows[0]]
    return [
        {h: ("" if v is None else v) for h, v in zip(header, row, strict=False) if h}
        for row in rows[1:]
    ]


def _split(value: Any) -> list[str]:
    return [part.strip() for part in nfkc(str(value or "")).split(";") if part.strip()]


def _int(value: Any, where: str) -> int:
    text = nfkc(str(value)).replace(",", "").removesuffix("年度").strip()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(text)
    except ValueError as exc:
        raise RegisterImportError(f"{where}: {value!r} is not a whole number") from exc


def _normalise(
    columns: dict[str, str], required: tuple[str, ...], raw: dict[str, Any], where: str
) -> dict[str, Any]:
    keyed = {_header_key(k): v for k, v in raw.items()}
    for label in required:
        if str(keyed.get(_header_key(label), "")).strip() == "":
            raise RegisterImportError(f"{where}: column {label} is empty")
    row: dict[str, Any] = {}
    for label, field in columns.items():
        value = keyed.get(_header_key(label), "")
        if field in LIST_FIELDS:
            row[field] = _split(value)
        elif field in INT_FIELDS:
            row[field] = None if str(value).strip() == "" else _int(value, f"{where}: {label}")
        else:
            row[field] = str(value).strip() or None
    return row


def import_operators(store: Store, path: Path, now: datetime) -> ImportSummary:
    return _import(
        store, path, now, ("operators", "code"), (OPERATOR_COLUMNS, OPERATOR_REQUIRED), _operator
    )


def _operator(row: dict[str, Any], where: str) -> None:
    row.update(normalised_operator(row))
    if not _CODE.match(row["code"]):
        raise RegisterImportError(
            f"{where}: 事業者コード {row['code']!r} is not 4 digits or capital letters"
        )
    _check_contact_email(row, where)
    for grid_code in row["issued_grid_codes"]:
        if not is_grid_code(grid_code):
            raise RegisterImportError(
                f"{where}: 発番済系統コード {grid_code!r} is not 5 digits or capital letters"
            )


def _check_contact_email(row: dict[str, Any], where: str) -> None:
    """Raises RegisterImportError when 連絡者メール is not one mail address: every notice and
    objection result goes to it, so `a; b` would fail at SMTP for good and a line break would
    be a header written into our mail."""
    email = row.get("contact_email")
    if email and not is_email(email):
        raise RegisterImportError(f"{where}: 連絡者メール {email!r} is not one mail address")


def normalised_operator(row: dict[str, Any]) -> dict[str, Any]:
    """An operator's row in the forms the checks compare: takes the register fields as
    written (a form, an import) and returns them NFKC-folded and stripped, the 郵便番号 as
    NNN-NNNN (`１３５－００６１` → `135-0061`), the 略称's mark half-width (`広域機関＿容` →
    `広域機関_容`), ドメイン名 and 連絡者メール in lower case. What the register keeps is
    what a later check, a notice or an export reads, never the applicant's keystrokes."""
    out = dict(row)
    out["code"] = normalise_code(row["code"])
    for key in ("name", "short_name", "address", "postal_code", "domain", "contact_email"):
        value = row.get(key)
        out[key] = (nfkc(str(value)).strip() or None) if value is not None else None
    if out["postal_code"]:
        out["postal_code"] = normalise_postal_code(out["postal_code"]) or out["postal_code"]
    for key in ("contact_email", "domain"):
        if out[key]:
            out[key] = out[key].lower()
    out["name"] = out["name"] or ""
    if "issued_grid_codes" in row:
        out["issued_grid_codes"] = [normalise_code(c) for c in row["issued_grid_codes"]]
    return out


def _import(
    store: Store,
    path: Path,
    now: datetime,
    table: tuple[str, str],
    columns: tuple[dict[str, str], tuple[str, ...]],
    prepare: Callable[[dict[str, Any], str], None],
) -> ImportSummary:
    """Read a register file, normalise every row (`columns`: the header map and the required
    fields), let `prepare` check and fix each, and upsert into (table, key column)."""
    prepared = []
    for number, raw in enumerate(read_table(path), start=2):
        where = f"{path}: row {number}"
        row = _normalise(*columns, raw, where)
        prepare(row, where)
        prepared.append(row)
    return _upsert(store, *table, prepared, now)


ROADMAP_CATEGORY = "安定電源"


def is_roadmap_category(category: object) -> bool:
    """「…改修を行う安定電源」 (seed 004 §3 <対象電源>): a roadmap target is a 安定電源."""
    return participation_category(category) == ROADMAP_CATEGORY


def import_sources(store: Store, path: Path, now: datetime) -> ImportSummary:
    return _import(
        store, path, now, ("sources", "source_id"), (SOURCE_COLUMNS, SOURCE_REQUIRED), _source
    )


def _source(row: dict[str, Any], where: str) -> None:
    row["operator_code"] = normalise_code(row["operator_code"])
    row["contact_email"] = (row["contact_email"] or "").lower()
    _check_contact_email(row, where)
    row["roadmap_target"] = 1 if row["roadmap_target"] else 0
    if row["roadmap_target"] and not is_roadmap_category(row.get("category")):
        raise RegisterImportError(
            f"{where}: ロードマップ対象 = 1 but 容量を提供する電源等の区分 is "
            f"{row.get('category') or 'empty'!r}: only 安定電源 of the kinds in seed 004 §3 "
            "<対象電源> are roadmap targets"
        )


def _upsert(
    store: Store, table: str, key: str, rows: list[dict[str, Any]], now: datetime
) -> ImportSummary:
    added = changed = unchanged = 0
    stamp = now.isoformat(timespec="seconds")
    with store.transaction():
        for row in progress(rows, f"importing {table}", total=len(rows)):
            encoded = {
                k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
                for k, v in row.items()
            }
            if table == "operators":
                encoded["name_key"] = name_key(row["name"])
            current = store.execute(
                f"SELECT * FROM {table} WHERE {key} = ?", (row[key],)
            ).fetchone()
            if current is None:
                _insert(store, table, {**encoded, "updated_at": stamp})
                added += 1
            elif any(current[k] != v for k, v in encoded.items()):
                _update(store, table, key, row[key], {**encoded, "updated_at": stamp})
                changed += 1
            else:
                unchanged += 1
    return ImportSummary(added, changed, unchanged)


def _insert(store: Store, table: str, row: dict[str, Any]) -> None:
    """Column names come from this module's header map, never from a file's own header."""
    columns = ", ".join(row)
    marks = ", ".join("?" * len(row))
    store.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values()))


def _update(store: Store, table: str, key: str, value: Any, row: dict[str, Any]) -> None:
    assignments = ", ".join(f"{column} = ?" for column in row)
    store.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?", (*row.values(), value))


def _decode_operator(row: Any) -> dict[str, Any]:
    out = dict(row)
    for field in LIST_FIELDS:
        out[field] = json.loads(out[field] or "[]")
    return out


def operator(store: Store, code: str) -> dict[str, Any] | None:
    row = store.execute(
        "SELECT * FROM operators WHERE code = ?", (normalise_code(code),)
    ).fetchone()
    return _decode_operator(row) if row else None


def operators_for_sender(
    store: Store, sender: str, free_mail: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Operators this address belongs to: its registered contact, or a mail domain match.
    At a free-mail domain (`free_mail`, rules/trust.toml) only the exact address counts:
    anyone can open an address at gmail.com."""
    sender = sender.lower()
    domain = sender.rsplit("@", 1)[-1]
    if any(domain == d or domain.endswith("." + d) for d in free_mail):
        rows = store.execute(
            "SELECT * FROM operators WHERE contact_email = ? ORDER BY code", (sender,)
        ).fetchall()
        return [_decode_operator(r) for r in rows]
    rows = store.execute(
        "SELECT * FROM operators WHERE contact_email = ? OR domain = ? OR ? LIKE '%.' || domain"
        " ORDER BY code",
        (sender, domain, domain),
    ).fetchall()
    return [_decode_operator(r) for r in rows]


def operators_named(store: Store, name: str) -> list[dict[str, Any]]:
    """Registered operators of this name, compared as `text.name_key` folds names."""
    rows = store.execute(
        "SELECT * FROM operators WHERE name_key = ? ORDER BY code", (name_key(name),)
    ).fetchall()
    return [_decode_operator(r) for r in rows]


def source(store: Store, source_id: str) -> dict[str, Any] | None:
    row = store.execute("SELECT * FROM sources WHERE source_id = ?", (source_id,)).fetchone()
    return dict(row) if row else None


def register_operator(store: Store, fields: dict[str, Any], now: datetime) -> None:
    """A code staff just issued joins the register (inside the caller's transaction)."""
    row = {
        k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v
        for k, v in normalised_operator(fields).items()
    }
    row["name_key"] = name_key(row["name"])
    _insert(
        store,
        "operators",
        {**row, "origin": "issued", "updated_at": now.isoformat(timespec="seconds")},
    )


def register_grid_code(
    store: Store, code: str, plant_name: str, area: str, grid_code: str, now: datetime
) -> None:
    """An issued 系統コード joins the register (inside the caller's transaction): the
    発電所名略称 in the operator's 系統コード list (SPEC §9 keeps that column as the plant
    names), and the code itself in `grid_codes`, whose key refuses a second use of it.
    Raises MailbotError when the operator is not registered."""
    op = operator(store, code)
    if op is None:
        raise MailbotError(f"事業者コード {code} is not in the register")
    grid = (
        [*op["grid_codes"], plant_name] if plant_name not in op["grid_codes"] else op["grid_codes"]
    )
    areas = [*op["areas"], area] if area and area not in op["areas"] else op["areas"]
    _update(
        store,
        "operators",
        "code",
        code,
        {
            "grid_codes": json.dumps(grid, ensure_ascii=False),
            "areas": json.dumps(areas, ensure_ascii=False),
            "updated_at": now.isoformat(timespec="seconds"),
        },
    )
    _insert(
        store,
        "grid_codes",
        {
            "grid_code": grid_code,
            "operator_code": code,
            "plant_name": plant_name,
            "area": area or None,
            "issued_at": now.isoformat(timespec="seconds"),
        },
    )


FORM_COMPANY_FIELDS = ("事業者名称", "事業者名称(発電所所有者)")
"""The form fields that name the applicant company, in the order they are looked at."""


def form_company(case: dict[str, Any]) -> str:
    """The company the case's form names (`form_company` when a query selected it, else the
    decoded `data`), or ""."""
    if case.get("form_company"):
        return str(case["form_company"])
    data = case.get("data")
    form = data.get("form") if isinstance(data, dict) else None
    if isinstance(form, dict):
        for field in FORM_COMPANY_FIELDS:
            if isinstance(form.get(field), str) and form[field].strip():
                return form[field].strip()
    return ""


def party(store: Store, case: dict[str, Any], names: dict[str, str | None] | None = None) -> str:
    """The 事業者 staff see for a case, the same in the web queue, the report and the digest:
    its 事業者コード and the registered company's name, else the company its form names, else
    nothing (never the sender's personal name or address). `names` caches register look-ups
    across the rows of one listing."""
    names = {} if names is None else names
    code = case.get("operator_code") or ""
    if code and code not in names:
        found = operator(store, code)
        names[code] = found["name"] if found else None
    name = (names.get(code) if code else None) or form_company(case)
    return f"{code} {name}".strip()
