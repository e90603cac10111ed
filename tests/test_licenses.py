"""The license rule of seed 000 (参考資料), row by row."""

import pytest

from mailbot.config import RULES_DIR
from mailbot.procedures.licenses import load_license_table, verdict

TABLE = load_license_table(RULES_DIR / "licenses.toml")
GEN = [("1234", ["発電"])]
RETAIL = [("1234", ["小売"])]
DR = [("5678", ["区分なし(需要抑制)"])]


@pytest.mark.parametrize(
    ("category", "held", "apply_for", "serving"),
    [
        # 既存コードのライセンス区分 発電/小売
        ("安定電源", GEN, None, "1234"),
        ("変動電源（単独）", RETAIL, None, "1234"),
        ("変動電源（アグリゲート）", GEN, None, "1234"),
        ("発動指令電源（電源）", GEN, None, "1234"),
        ("発動指令電源（DR）", GEN, "区分なし（需要抑制）", None),
        ("発動指令電源（電源／DR混在）", RETAIL, "区分なし（需要抑制）", None),
        # 既存コードのライセンス区分 区分なし（需要抑制）
        ("安定電源", DR, "発電", None),
        ("変動電源（単独）", DR, "発電", None),
        ("変動電源（アグリゲート）", DR, "発電", None),
        ("発動指令電源（電源）", DR, "発電", None),
        ("発動指令電源（DR）", DR, None, "5678"),
        ("発動指令電源（電源／DR混在）", DR, "発電", None),
        # 既存コードなし
        ("安定電源", [], "発電", None),
        ("変動電源（アグリゲート）", [], "発電", None),
        ("発動指令電源（DR）", [], "区分なし（需要抑制）", None),
        ("発動指令電源（電源／DR混在）", [], "区分なし（需要抑制）", None),
        # both licenses held: 混在 is served
        ("発動指令電源（電源／DR混在）", GEN + DR, None, "5678"),
    ],
)
def test_license_table(category, held, apply_for, serving):
    result = verdict(TABLE, category, held)
    assert (result.apply_for, result.serving_code) == (apply_for, serving)


def test_grid_code_needed_only_for_power_list_categories():
    assert "安定電源" not in TABLE.grid_code_needed
    assert "変動電源（単独）" not in TABLE.grid_code_needed
    assert "変動電源（アグリゲート）" in TABLE.grid_code_needed
    assert "発動指令電源（DR）" in TABLE.grid_code_needed
