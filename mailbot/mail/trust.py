"""Whom a mail may speak for: robots that must never be answered nor change a case, and the
free-mail domains where an address is a person and the domain proves nothing.

Pure: the rules are `rules/trust.toml` (data staff may edit); the functions decide from
addresses and subjects only. Nothing here touches the store or sends mail.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile
from mailbot.text import nfkc


@dataclass(frozen=True)
class TrustRules:
    robot_subjects: tuple[re.Pattern[str], ...]
    robot_senders: tuple[re.Pattern[str], ...]
    free_mail: frozenset[str]

    def robot_subject(self, subject: str) -> str | None:
        """The out-of-office marker the subject starts with (after Re:/Fw: kept by robots)."""
        text = nfkc(subject).strip()
        for pattern in self.robot_subjects:
            match = pattern.match(text)
            if match:
                return match.group(0).strip()
        return None

    def robot_sender(self, address: str) -> bool:
        local = address.rsplit("@", 1)[0]
        return any(pattern.fullmatch(local) for pattern in self.robot_senders)

    def is_free_mail(self, address_or_domain: str) -> bool:
        domain = address_or_domain.rsplit("@", 1)[-1].strip().lower().rstrip(".")
        return any(domain == d or domain.endswith("." + d) for d in self.free_mail)

    def same_party(self, a: str, b: str) -> bool:
        """Two addresses are the same participant: the same address, or the same domain when
        that domain is an organisation's own (never a free-mail or ISP domain)."""
        a, b = a.strip().lower(), b.strip().lower()
        if not a or not b or "@" not in a or "@" not in b:
            return False
        if a == b:
            return True
        domain = a.rsplit("@", 1)[1]
        return domain == b.rsplit("@", 1)[1] and not self.is_free_mail(domain)


def _patterns(raw: object, where: str) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise ConfigError(where, "must be a list of regular expressions")
    try:
        return tuple(re.compile(p, re.IGNORECASE) for p in raw)
    except re.error as exc:
        raise ConfigError(where, f"not a regular expression: {exc}") from exc


def _load(path: Path) -> TrustRules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from exc
    robots = data.get("robots", {})
    domains = data.get("free_mail", {}).get("domains", [])
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise ConfigError(f"{path}: free_mail.domains", "must be a list of domains")
    return TrustRules(
        robot_subjects=_patterns(robots.get("subjects", []), f"{path}: robots.subjects"),
        robot_senders=_patterns(robots.get("senders", []), f"{path}: robots.senders"),
        free_mail=frozenset(d.strip().lower() for d in domains if d.strip()),
    )


def load_trust_rules(rules_dir: Path) -> TrustRules:
    """The deployment's trust.toml, or the shipped one when its rules folder has none (a
    deployment made before this file existed keeps these defences)."""
    return TRUST_RULES.load(rules_dir)


TRUST_RULES = RulesFile("trust.toml", _load, fallback=RULES_DIR)
