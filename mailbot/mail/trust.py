"""Whom a mail may speak for: robots that must never be answered nor change a case, the
free-mail domains where an address is a person and the domain proves nothing, and what our
receiving MTA's Authentication-Results header vouches for.

Pure: the rules are `rules/trust.toml` (data staff may edit); the functions decide from
addresses, subjects and header text only. Nothing here touches the store or sends mail.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
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
    automatic_per_case: int = 6
    automatic_per_thread: int = 8

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
    loops = data.get("loops", {})
    return TrustRules(
        robot_subjects=_patterns(robots.get("subjects", []), f"{path}: robots.subjects"),
        robot_senders=_patterns(robots.get("senders", []), f"{path}: robots.senders"),
        free_mail=frozenset(d.strip().lower() for d in domains if d.strip()),
        automatic_per_case=_limit(loops, "automatic_per_case", path),
        automatic_per_thread=_limit(loops, "automatic_per_thread", path),
    )


def _limit(table: object, key: str, path: Path) -> int:
    default = getattr(TrustRules, key)
    value = table.get(key, default) if isinstance(table, dict) else default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{path}: loops.{key}", "must be a whole number above 0")
    return value


def load_trust_rules(rules_dir: Path) -> TrustRules:
    """The deployment's trust.toml, or the shipped one when its rules folder has none (a
    deployment made before this file existed keeps these defences)."""
    return TRUST_RULES.load(rules_dir)


TRUST_RULES = RulesFile("trust.toml", _load, fallback=RULES_DIR)


@dataclass(frozen=True)
class AuthVerdict:
    """Our receiving MTA's DMARC results for one mail: (result, header.from domain) pairs from
    the topmost Authentication-Results header stamped with our own authserv-id. Empty when
    our MTA said nothing (a pass in a header any other host or the sender wrote is never
    read). `failed_elsewhere`: some other header says dmarc=fail (Exchange Online stamps no
    authserv-id at all); that holds the mail too, since a forged fail only holds the
    forger's own mail."""

    dmarc: tuple[tuple[str, str], ...] = ()
    failed_elsewhere: bool = False

    @property
    def dmarc_failed(self) -> bool:
        return self.failed_elsewhere or any(result == "fail" for result, _ in self.dmarc)

    def judged_another(self, address: str) -> str | None:
        """The From domain our MTA judged when it is not this address's: the MTA read another
        address out of the From field than we did, and ours was never checked."""
        domain = address.rsplit("@", 1)[-1].strip().lower().rstrip(".")
        return next((found for _, found in self.dmarc if found and found != domain), None)

    def vouches_for(self, address: str) -> bool:
        """DMARC passed for this very From domain: every dmarc result of our header is a pass
        with `header.from=` aligned (a pass beside a none or another domain's pass is no
        proof), and no header anywhere says it failed. SPF and DKIM alone prove nothing about
        From: any domain can pass them for itself."""
        domain = address.rsplit("@", 1)[-1].strip().lower().rstrip(".")
        if not domain or "@" not in address or self.dmarc_failed or not self.dmarc:
            return False
        return all(result == "pass" and found == domain for result, found in self.dmarc)


_PAIR = re.compile(r'([A-Za-z0-9_.\-/]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s";]+)')


def _without_comments(value: str) -> str:
    """RFC 5322 comments (nested, with quoted pairs) replaced by a space; quoted strings kept."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in value:
        if escaped:
            escaped = False
            if not depth:
                out.append(ch)
            continue
        if ch == "\\" and (depth or quoted):
            escaped = True
            if not depth:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
            if not depth:
                out.append(" ")
        elif not depth:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def _split(value: str) -> list[str]:
    """The header's parts at each `;` outside a quoted string."""
    parts, current, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return value.strip().lower()


def _dmarc_results(parts: Iterable[str]) -> list[tuple[str, str]]:
    dmarc = []
    for part in parts:
        pairs = [(k.lower(), _unquote(v)) for k, v in _PAIR.findall(part)]
        if not pairs or pairs[0][0].split("/", 1)[0] != "dmarc":
            continue
        found = dict(pairs[1:]).get("header.from", "")
        dmarc.append((pairs[0][1], found.rsplit("@", 1)[-1].rstrip(".")))
    return dmarc


def auth_verdict(headers: Iterable[str], ours: Callable[[str], bool]) -> AuthVerdict:
    """The verdict of the topmost Authentication-Results header (RFC 8601) whose authserv-id
    `ours` accepts; headers are given topmost first. Comments, quoted values, any case and
    several results per header are read; a pass in a header stamped by anyone else is
    skipped, a dmarc=fail anywhere (with or without an authserv-id) is kept."""
    verdict: list[tuple[str, str]] | None = None
    failed_elsewhere = False
    for header in headers:
        parts = _split(_without_comments(header))
        words = parts[0].split()
        if verdict is None and words and ours(_unquote(words[0])):
            verdict = _dmarc_results(parts[1:])
        else:
            failed_elsewhere |= any(r == "fail" for r, _ in _dmarc_results(parts))
    return AuthVerdict(tuple(verdict or ()), failed_elsewhere)
