"""The license rule of seed 000 (参考資料): which ライセンス区分 a new 事業者コード needs for a
参加区分, given the codes the applicant already holds. Pure; the table is `rules/licenses.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.errors import ConfigError
from mailbot.forms.fields import DEMAND_RESPONSE, license_category
from mailbot.rulefile import RulesFile

GENERATION_OR_RETAIL = frozenset({"発電", "小売"})


@dataclass(frozen=True)
class LicenseTable:
    needed: dict[str, dict[str, str]]
    grid_code_needed: frozenset[str]


@dataclass(frozen=True)
class LicenseVerdict:
    """`serving_code` is set when a held code already serves; else `apply_for` names the
    license the application must carry."""

    apply_for: str | None
    serving_code: str | None


def load_license_table(path: Path) -> LicenseTable:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        needed = {
            c["name"]: {
                "none": c["none"],
                "generation_or_retail": c["generation_or_retail"],
                "demand_response": c["demand_response"],
            }
            for c in data["categories"]
        }
        return LicenseTable(needed, frozenset(data["grid_code_needed"]))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), f"not a valid license table: {exc}") from exc


def normalise_license(text: str) -> str:
    return license_category(text) or text


def verdict(
    table: LicenseTable, category: str, held: list[tuple[str, list[str]]]
) -> LicenseVerdict:
    """`held` lists (code, licenses) the applicant holds already."""
    row = table.needed[category]
    by_kind: dict[str, str] = {}
    for code, licenses in held:
        names = {normalise_license(name) for name in licenses}
        if names & GENERATION_OR_RETAIL:
            by_kind.setdefault("generation_or_retail", code)
        if DEMAND_RESPONSE in names:
            by_kind.setdefault("demand_response", code)
    for kind, code in by_kind.items():
        if row[kind] == "":
            return LicenseVerdict(None, code)
    if len(by_kind) == 2:
        return LicenseVerdict(None, by_kind["demand_response"])
    if len(by_kind) == 1:
        return LicenseVerdict(row[next(iter(by_kind))], None)
    return LicenseVerdict(row["none"], None)


def _kinds(licenses: list[str]) -> set[str]:
    names = {normalise_license(name) for name in licenses}
    kinds = set()
    if names & GENERATION_OR_RETAIL:
        kinds.add("generation_or_retail")
    if DEMAND_RESPONSE in names:
        kinds.add("demand_response")
    return kinds


def serving_held_code(
    table: LicenseTable,
    category: str | None,
    held: list[tuple[str, list[str]]],
    applying: list[str],
) -> str | None:
    """The held code that already serves an application, or None. Takes the 参加区分 (None
    when unknown), the (code, licenses) the company holds and the ライセンス区分 the new code
    would carry. A code serves when the 参考資料 table says no new code is needed for the
    参加区分, or when it carries the same kind of ライセンス区分 as the new one would (発電 and
    小売 are one kind there): 「ライセンス区分が同一の場合、事業者コードを複数取得する必要は
    ありません」. Staff issuing a code meet this rule as the intake did."""
    if category in table.needed:
        found = verdict(table, category, held).serving_code
        if found:
            return found
    wanted = _kinds(applying)
    return next((code for code, licenses in held if _kinds(licenses) & wanted), None)


LICENSE_RULES = RulesFile("licenses.toml", load_license_table)
