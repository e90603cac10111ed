"""脱炭素化ロードマップの遵守に係るアセスメント結果に対する異議申立 (seed 004 §3.1.6)."""

from mailbot.procedures.objection import Objection

# 「…既設火力をバイオマス専焼にするための改修を行う安定電源」 (seed 004 §3 <対象電源>)
CATEGORIES = ("安定電源",)


def handler() -> Objection:
    return Objection("roadmap_objection", "roadmap", "脱炭素化ロードマップの遵守", CATEGORIES)
