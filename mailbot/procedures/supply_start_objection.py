"""供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立 (seed 004 §2.1.3)."""

from mailbot.procedures.objection import Objection

# 「制度適用期間前の安定電源・変動電源」 (seed 004 §2 <対象電源>), in seed 000's spelling
CATEGORIES = ("安定電源", "変動電源（単独）", "変動電源（アグリゲート）")


def handler() -> Objection:
    return Objection(
        "supply_start_objection", "supply_start", "供給力提供開始時期の遵守", CATEGORIES
    )
