"""What the pipeline reads from one raw mail, for `mailbot parse` (SPEC §9).

For staff asking "why did this mail get this answer" and for corpus tests: the decoded fields
and the classification, computed by the same functions the pipeline calls. Never stores
anything: the database is only read (thread look-up), and only when it already exists.
"""

from __future__ import annotations

from typing import Any

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.context import Context
from mailbot.intake.pipeline import _thread_for
from mailbot.mail import Mail
from mailbot.mail.loops import no_reply_reason
from mailbot.mail.parse import parse
from mailbot.mail.trust import load_trust_rules
from mailbot.routing import classify, load_routing
from mailbot.store import Store


def read_out(raw: bytes, config: Config, mailbox: str, clock: Clock) -> dict[str, Any]:
    """The SPEC §9 fields (subject, from, from_name, to, date, message_id, body, attachments,
    procedure) and a few more that explain a classification (not_answered, defects, …)."""
    mail = parse(raw)
    box = config.mailbox_for(mailbox)
    local = box.local_part if box else mailbox.split("@", 1)[0].lower()
    thread = None
    if config.database.exists():
        with Context(config=config, store=Store(config.database), clock=clock) as ctx:
            thread = _thread_for(ctx, mail)
    routing = load_routing(config.rules_dir)
    classification = classify(routing, mail.subject, local, thread)
    return {
        **fields(mail),
        "procedure": classification.procedure,
        "case_id": classification.case_id,
        "subject_code": classification.subject_code,
        "mailbox": mailbox,
        "wrong_mailbox": classification.wrong_mailbox,
        "not_answered": no_reply_reason(
            mail,
            config.own_addresses | frozenset(config.staff_addresses),
            config.message_id_domain,
            load_trust_rules(config.rules_dir),
        ),
    }


def fields(mail: Mail) -> dict[str, Any]:
    """A parsed mail as plain JSON values."""
    return {
        "subject": mail.subject,
        "from": mail.from_addr,
        "from_name": mail.from_name,
        "to": list(mail.to),
        "cc": list(mail.cc),
        "reply_to": mail.reply_to,
        "date": mail.date.isoformat() if mail.date else None,
        "message_id": mail.message_id,
        "in_reply_to": mail.in_reply_to,
        "references": list(mail.references),
        "body": mail.text,
        "attachments": [
            {"name": a.filename, "size": a.size, "content_type": a.content_type}
            for a in mail.attachments
        ],
        "defects": list(mail.defects),
    }


def as_text(found: dict[str, Any]) -> str:
    """The read-out for a terminal: one `key: value` line per field, then the body."""
    lines = []
    for key, value in found.items():
        if key in ("body", "attachments"):
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        lines.append(f"{key}: {'' if value is None else value}")
    lines.append("attachments:")
    lines.extend(
        f"  {a['name']}  ({a['size']} bytes, {a['content_type']})" for a in found["attachments"]
    )
    lines.extend(["", found["body"]])
    return "\n".join(lines)
