"""Canned replies staff keep and edit: `templates/replies/NAME.txt.j2` (the deployment's copy
first, else the one shipped), each with a `title` block (what the desk lists) and a `body`
block (the text put into the reply box, for staff to finish before they preview and send).

Placeholders are the case's fields: `case_number`, `procedure_name`, `party`, `sender_name`,
`subject`, `received` (when it came in), `due`, `problems` (each `field`, `message`),
`owner`, `staff_name` (who is replying). Templates run sandboxed: a template edited by
staff can read these values and nothing else of the process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from mailbot.config import TEMPLATES_DIR, Config
from mailbot.mail.render import jdate, jdatetime

_NAME = re.compile(r"^[a-z0-9_]{1,64}$")


@dataclass(frozen=True)
class CannedReply:
    name: str
    title: str
    body: str


def _environment(config: Config) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=ChoiceLoader(
            [FileSystemLoader(config.templates_dir), FileSystemLoader(TEMPLATES_DIR)]
        ),
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(jdate=jdate, jdatetime=jdatetime)
    return env


def reply_names(config: Config) -> list[str]:
    """The canned replies there are, by name (file name without `.txt.j2`), sorted."""
    names: set[str] = set()
    for folder in (Path(config.templates_dir) / "replies", TEMPLATES_DIR / "replies"):
        if folder.is_dir():
            names |= {
                p.name.removesuffix(".txt.j2")
                for p in folder.glob("*.txt.j2")
                if _NAME.match(p.name.removesuffix(".txt.j2"))
            }
    return sorted(names)


def render_reply(config: Config, name: str, fields: dict[str, Any]) -> CannedReply:
    """The canned reply `name` filled with the case's `fields`. Raises KeyError for a name
    that is not a canned reply, and jinja2's errors for a template that does not render."""
    if not _NAME.match(name) or name not in reply_names(config):
        raise KeyError(name)
    template = _environment(config).get_template(f"replies/{name}.txt.j2")
    context = template.new_context(fields)
    title = "".join(template.blocks["title"](context)).strip()
    body = "".join(template.blocks["body"](context)).strip("\n")
    return CannedReply(name, title, body)


def case_fields(case: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The placeholders of a canned reply for this case (`extra`: procedure_name, party,
    case_number, staff_name, as the caller knows them)."""
    return {
        "sender_name": case.get("sender_name") or "",
        "subject": case.get("subject") or "",
        "received": case.get("received_at") or "",
        "due": str(case.get("due") or "")[:10],
        "problems": list(case.get("problems") or []),
        "owner": case.get("owner") or "",
    } | extra


SAMPLE_CASE = {
    "sender_name": "佐々木 花子",
    "subject": "【容量市場向け事業者コード申請】みなとエナジー株式会社",
    "received_at": "2026-11-25T09:40:00+09:00",
    "due": None,
    "problems": [{"field": "事業者名略称", "message": "末尾に「_容」をお付けください。"}],
    "owner": "sato",
}
"""A case to render every canned reply with (`mailbot doctor`)."""


def sample_fields() -> dict[str, Any]:
    return case_fields(
        SAMPLE_CASE,
        case_number="MB-000002",
        procedure_name="容量市場向け事業者コード申請",
        party="みなとエナジー株式会社",
        staff_name="佐藤",
    )
