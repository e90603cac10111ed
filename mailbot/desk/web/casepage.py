"""What the case page puts first: the participant's latest mail and the form as the check read
it, its problems and the staff-only remarks beside the fields they concern."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailbot.outcome import remarks_of


@dataclass(frozen=True)
class FormRow:
    field: str
    value: str
    problems: tuple[str, ...]
    remarks: tuple[str, ...]


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "、".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return "、".join(f"{k}: {_shown(v)}" for k, v in value.items())
    return str(value)


def form_rows(case: dict[str, Any]) -> list[FormRow]:
    """The fields the check read from the case's form (`data.form`), in the form's order,
    each with the problems and remarks that name it. Problems and remarks about a field the
    form does not hold are listed by `loose_notes`."""
    form = (case.get("data") or {}).get("form")
    if not isinstance(form, dict):
        return []
    problems = case.get("problems") or []
    remarks = remarks_of(case)
    return [
        FormRow(
            field=str(field),
            value=_shown(value),
            problems=tuple(p["message"] for p in problems if p.get("field") == field),
            remarks=tuple(r["message"] for r in remarks if r.get("field") == field),
        )
        for field, value in form.items()
    ]


def loose_notes(case: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(problems, remarks) that name no field of the form: shown in their own list."""
    form = (case.get("data") or {}).get("form")
    fields = set(form) if isinstance(form, dict) else set()
    problems = [p for p in case.get("problems") or [] if p.get("field") not in fields]
    remarks = [r for r in remarks_of(case) if r.get("field") not in fields]
    return problems, remarks


def latest_incoming(mails: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The participant's newest mail of the case (the mails are oldest first)."""
    return next((m for m in reversed(mails) if m["way"] == "in"), None)
