"""脱炭素化ロードマップの遵守に係るアセスメント結果に対する異議申立 (seed 004 §3.1.6)."""

from mailbot.procedures.objection import Objection


def handler() -> Objection:
    return Objection("roadmap_objection", "roadmap", "脱炭素化ロードマップの遵守")
