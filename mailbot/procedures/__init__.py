"""The handler table: procedure id (SPEC §1) → handler, built per run and kept on the Context."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailbot.procedures.base import Procedure

if TYPE_CHECKING:
    from mailbot.context import Context


def build_registry() -> dict[str, Procedure]:
    from mailbot.procedures import (
        grid_code_application,
        mismatch_reply,
        operator_code_application,
        roadmap_objection,
        roadmap_revision_reply,
        supply_start_assessment,
        supply_start_objection,
        unrecognized,
    )

    handlers: list[Procedure] = [
        unrecognized.Unrecognized(),
        operator_code_application.OperatorCodeApplication(),
        grid_code_application.GridCodeApplication(),
        supply_start_objection.handler(),
        roadmap_objection.handler(),
        roadmap_revision_reply.RoadmapRevisionReply(),
        mismatch_reply.MismatchReply(),
        supply_start_assessment.SupplyStartAssessment(),
    ]
    return {h.id: h for h in handlers}


def registry(ctx: Context) -> dict[str, Procedure]:
    table = ctx.__dict__.get("_registry")
    if table is None:
        table = build_registry()
        ctx.__dict__["_registry"] = table
    return table
