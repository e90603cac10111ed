"""Mail asking the desk to change a code's registered contact details: recognised by the
phrases of `rules/contact_change.toml` and answered with where such a change is made (seed 000:
「各コードの登録情報（担当者・連絡先等）変更手続きは、当該システムを利用して行います。」), instead of
the subject guidance that mail matching no procedure gets. Pure: reads the mail and the rule."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError
from mailbot.mail import Mail
from mailbot.procedures.common import own_text
from mailbot.rulefile import RulesFile
from mailbot.text import nfkc

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ContactChangeRule:
    mailboxes: frozenset[str]
    phrases: tuple[str, ...]


def load_contact_change(path: Path) -> ContactChangeRule:
    """Takes the rules file; returns the rule; raises ConfigError naming what is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        mailboxes = frozenset(str(m) for m in data["mailboxes"])
        phrases = tuple(_fold(str(p)) for p in data["phrases"] if str(p).strip())
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(str(path), f"not a valid contact-change rule: {exc}") from exc
    if not phrases:
        raise ConfigError(str(path), "phrases: at least one phrase is needed")
    return ContactChangeRule(mailboxes, phrases)


def _fold(text: str) -> str:
    return _SPACE.sub("", nfkc(text))


def asks_contact_change(rule: ContactChangeRule, mail: Mail, mailbox: str) -> bool:
    """Does this mail, arrived at `mailbox` (a local part), ask to change registered contact
    details? Its subject and its own text (quotes left out) are searched for a phrase."""
    if mailbox not in rule.mailboxes:
        return False
    text = _fold(f"{mail.subject}\n{own_text(mail)}")
    return any(phrase in text for phrase in rule.phrases)


CONTACT_CHANGE_RULES = RulesFile("contact_change.toml", load_contact_change, fallback=RULES_DIR)
