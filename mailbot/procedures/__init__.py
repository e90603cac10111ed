"""The handler table: procedure id (SPEC §1) → handler, built once per process, read-only."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from mailbot.procedures.base import Procedure


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


@functools.cache
def registry() -> Mapping[str, Procedure]:
    """Built once per process and read-only: handlers are stateless code, the same for every
    run and every Context, so nothing is kept on the Context."""
    return MappingProxyType(build_registry())
