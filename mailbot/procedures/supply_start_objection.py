"""供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立 (seed 004 §2.1.3)."""

from mailbot.procedures.objection import Objection


def handler() -> Objection:
    return Objection("supply_start_objection", "supply_start", "供給力提供開始時期の遵守")
