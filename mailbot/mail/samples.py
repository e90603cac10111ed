"""Representative contexts for every mail template, as the code that sends each mail passes
them (recorded from the test suite's runs of the seed procedures; dates kept as dates).
`mailbot doctor` renders each template of a deployment with them, so a template edited to use
a name the code never passes, or a filter that fails on real values, is found before the first
mail it would have quarantined."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime
from functools import cache
from importlib.resources import files
from typing import Any


def _revive(value: dict[str, Any]) -> Any:
    if value.keys() == {"$date"}:
        return date.fromisoformat(value["$date"])
    if value.keys() == {"$datetime"}:
        return datetime.fromisoformat(value["$datetime"])
    return value


@cache
def _load() -> dict[str, dict[str, Any]]:
    text = files("mailbot.mail").joinpath("sample_contexts.json").read_text(encoding="utf-8")
    return json.loads(text, object_hook=_revive)


def sample_context(name: str) -> dict[str, Any] | None:
    """The context of `templates/mail/<name>.txt.j2`, a fresh copy; None for a template the
    code does not send by itself (a partial such as _signature)."""
    context = _load().get(name)
    return copy.deepcopy(context) if context else None
