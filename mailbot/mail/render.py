"""Rendering mail wording from `templates/` (Jinja2). Wording lives in templates, never in code.

A mail template defines two blocks, `subject` and `body`. HTML templates are autoescaped; text
templates are not HTML and are not escaped, and their subject is made single-line by compose.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2

from mailbot.text import visible

WEEKDAYS = "月火水木金土日"


def _when(value: date | datetime | str | None) -> date | datetime | None:
    """A template's date value: a date, or ISO text as the store keeps it; None for none."""
    if value is None or value == "":
        return None
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def jdate(value: date | datetime | str | None) -> str:
    """2026年11月25日（水） — how the operator's mails write a date."""
    when = _when(value)
    if when is None:
        return ""
    return f"{when.year}年{when.month}月{when.day}日（{WEEKDAYS[when.weekday()]}）"


def jdatetime(value: datetime | str | None) -> str:
    when = _when(value)
    return "" if when is None else f"{jdate(when)} {when:%H:%M}"


def slash_date(value: date | datetime | str | None) -> str:
    when = _when(value)
    return "" if when is None else f"{when:%Y/%m/%d}"


ORGANISATION_MARKERS = (
    "株式会社",
    "有限会社",
    "合同会社",
    "合資会社",
    "合名会社",
    "法人",
    "機構",
    "組合",
    "協会",
    "事業者",
    "㈱",
    "㈲",
    "(株)",
    "（株）",
    "(有)",
    "（有）",
    "電力",
    "エナジー",
    "エネルギー",
    "ガス",
    "Co.",
    "Ltd",
    "Inc",
    "Corp",
    "K.K.",
    "LLC",
    "GmbH",
)
ORGANISATION_ENDINGS = (
    "部",
    "課",
    "室",
    "係",
    "担当",
    "窓口",
    "センター",
    "事務局",
    "グループ",
    "チーム",
)
HONORIFICS = ("御中", "様", "殿", "さま")


def is_organisation(name: str) -> bool:
    """A company or a department, and nobody named beside it: 「新規参入株式会社 総務部」 is one,
    「株式会社髙橋電力 髙橋一郎」 names a person (様). 阿部 or 室井 are people: a department is
    known by its ending."""
    bare = _bare(name)
    if bare.isascii():
        return _organisation_part(bare)
    parts = [p for p in _NAME_PARTS.split(bare) if p]
    return bool(parts) and all(_organisation_part(p) for p in parts)


_NAME_PARTS = re.compile(r"[\s／/()（）]+")


def _organisation_part(part: str) -> bool:
    return part.endswith(ORGANISATION_ENDINGS) or any(
        marker.lower() in part.lower() for marker in ORGANISATION_MARKERS
    )


def addressee(name: str | None, person: str | None = None) -> str:
    """The opening address as the operator's staff write it: 「会社名 御中」 for an
    organisation, 「氏名 様」 for a person, 「会社名」 over 「氏名 様」 when both are known — never
    御中 and 様 together, and never a second honorific after one the name already carries."""
    name = (name or "").strip()
    person = (person or "").strip()
    if person and person != name:
        top = _bare(name)
        return f"{top}\n{_with_honorific(person, '様')}" if top else _with_honorific(person, "様")
    if not name:
        return "ご担当者様"
    return _with_honorific(name, "御中" if is_organisation(name) else "様")


def _bare(name: str) -> str:
    for honorific in HONORIFICS:
        if name.endswith(honorific):
            return name.removesuffix(honorific).rstrip()
    return name


def _with_honorific(name: str, honorific: str) -> str:
    if name.endswith(HONORIFICS):
        return name
    return f"{name} {honorific}"


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
        self.env.filters["addressee"] = addressee

    def mail(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        """(subject, body) of `templates/mail/<name>.txt.j2`."""
        template = self.env.get_template(f"mail/{name}.txt.j2")
        ctx = template.new_context(context)
        subject = "".join(template.blocks["subject"](ctx)).strip()
        body = "".join(template.blocks["body"](ctx)).strip("\n") + "\n"
        return subject, body

    def page(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)
