"""Rendering mail wording from `templates/` (Jinja2). Wording lives in templates, never in code.

A mail template defines two blocks, `subject` and `body`. HTML templates are autoescaped; text
templates are not HTML and are not escaped, and their subject is made single-line by compose.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2

from mailbot.text import visible

WEEKDAYS = "月火水木金土日"


def jdate(value: date | datetime | str | None) -> str:
    """2026年11月25日（水） — how the operator's mails write a date."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value.year}年{value.month}月{value.day}日（{WEEKDAYS[value.weekday()]}）"


def jdatetime(value: datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{jdate(value)} {value:%H:%M}"


def slash_date(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value:%Y/%m/%d}"


def _finalize(value: Any) -> Any:
    """Every value a template prints: a participant's text never brings control or bidi
    characters into our mail (markup we made ourselves is left as it is)."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return visible(value)
    return value


class Renderer:
    def __init__(self, templates_dir: Path) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            autoescape=jinja2.select_autoescape(["html", "html.j2"]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_finalize,
        )
        self.env.filters["jdate"] = jdate
        self.env.filters["jdatetime"] = jdatetime
        self.env.filters["slash_date"] = slash_date
        self.env.filters["yen"] = lambda n: f"{int(n):,}"

    def mail(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) of `templates/mail/<name>.txt.j2`."""
        template = self.env.get_template(f"mail/{name}.txt.j2")
        ctx = template.new_context(context)
        subject = "".join(template.blocks["subject"](ctx)).strip()
        body = "".join(template.blocks["body"](ctx)).strip("\n") + "\n"
        return subject, body

    def page(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)
