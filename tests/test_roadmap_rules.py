"""The roadmap file-name rule (seed 004 表3-2) and sheet layout (図3-3)."""

import pytest

from mailbot.config import RULES_DIR
from mailbot.forms.workbook import load_grids
from mailbot.longterm.roadmap import (
    expected_file_name,
    file_name_problems,
    load_roadmap_rules,
    sheet_problems,
)
from tests.support.forms import ROADMAP_PREMISES as FULL
from tests.support.forms import roadmap_workbook

RULES = load_roadmap_rules(RULES_DIR / "roadmap.toml")


@pytest.mark.parametrize(
    ("name", "problems"),
    [
        ("L2023_ABCD_△△発電所_D3_R1.xlsx", 0),  # 適用例
        ("L2023_ ABCD_ △△発電所_ D3_ R1.xlsx", 0),  # the seed's own spacing
        ("L2023_ABCD_△△発電所_D3_R2.xlsx", 1),  # wrong revision
        ("L2024_ABCD_△△発電所_D3_R1.xlsx", 1),  # wrong auction year
        ("L2023_EFGH_△△発電所_D3_R1.xlsx", 1),  # another operator's code
        ("roadmap.xlsx", 1),
    ],
)
def test_file_names(name, problems):
    found = file_name_problems(RULES, name, 2023, "ABCD", "△△発電所", 1).problems
    assert len(found) == problems, found


def test_long_source_names_are_shortened_to_fifty_characters():
    long_name = "とても長い名前の" * 8 + "発電所"
    name = expected_file_name(RULES, 2023, "ABCD", long_name, 3)
    assert len(name) == 50
    assert name.endswith("_D3_R3")
    found = file_name_problems(RULES, name + ".xlsx", 2023, "ABCD", long_name, 3)
    assert found.problems == found.remarks == []


def test_complete_sheet_passes():
    grids, failure = load_grids(roadmap_workbook(FULL))
    assert failure is None
    assert sheet_problems(RULES, grids) == []


def test_missing_premise_items_are_named():
    grids, _ = load_grids(roadmap_workbook("2030年代に水素混焼率10%で運転開始。"))
    problems = sheet_problems(RULES, grids)
    assert [p.field for p in problems] == ["前提条件"]
    assert "建設工事の期間" in problems[0].message
    assert "脱炭素燃料" in problems[0].message


def test_missing_columns_are_named():
    grids, _ = load_grids(roadmap_workbook(FULL, columns=("応札年度", "2020年代", "2030年代")))
    problems = sheet_problems(RULES, grids)
    assert any("2040年代" in p.message and "2050年度" in p.message for p in problems)
