"""Routing: subject and thread → procedure id, from `rules/procedures.toml`.

The table is loaded once and passed in (never a global); classifying is pure: the caller
looks the thread up in the store. Longer subjects are tried first so that one procedure's
subject that contains another's never steals its mail.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile
from mailbot.text import fold

CODE_PLACEHOLDER = "{事業者コード}"
CODE_PATTERN = r"(?P<operator_code>[0-9A-Za-z]{4})"


@dataclass(frozen=True)
class ProcedureRule:
    id: str
    name: str
    mailbox: str
    subject: str | None
    thread_only: bool
    answers: tuple[str, ...]
    service_level_business_days: int
    pattern: re.Pattern[str] | None

    def match_subject(self, subject: str) -> re.Match[str] | None:
        return self.pattern.search(fold(subject)) if self.pattern else None


@dataclass(frozen=True)
class Routing:
    procedures: tuple[ProcedureRule, ...]
    unrecognized_name: str
    guidance_per_sender_per_day: int

    def get(self, procedure_id: str) -> ProcedureRule | None:
        return next((p for p in self.procedures if p.id == procedure_id), None)

    def name_of(self, procedure_id: str) -> str:
        rule = self.get(procedure_id)
        return rule.name if rule else self.unrecognized_name

    @property
    def subjects(self) -> list[tuple[ProcedureRule, str]]:
        """The subjects a participant may use, for the guidance reply."""
        return [(p, p.subject) for p in self.procedures if p.subject]


def _compile(subject: str) -> re.Pattern[str]:
    folded = fold(subject)
    parts = [re.escape(part) for part in folded.split(fold(CODE_PLACEHOLDER))]
    return re.compile(CODE_PATTERN.join(parts))


def load_routing(rules_dir: Path) -> Routing:
    return ROUTING_RULES.load(rules_dir)


def _parse_routing(path: Path) -> Routing:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    rules: list[ProcedureRule] = []
    for i, entry in enumerate(data.get("procedures", [])):
        where = f"{path}: procedures[{i}]"
        try:
            pid = str(entry["id"])
            thread_only = bool(entry.get("thread_only", False))
            subject = entry.get("subject")
            if not thread_only and not subject:
                raise ConfigError(where, "needs a subject (or thread_only = true)")
            rules.append(
                ProcedureRule(
                    id=pid,
                    name=str(entry["name"]),
                    mailbox=str(entry["mailbox"]).lower(),
                    subject=subject,
                    thread_only=thread_only,
                    answers=tuple(entry.get("answers", ())),
                    service_level_business_days=int(entry["service_level_business_days"]),
                    pattern=_compile(subject) if subject else None,
                )
            )
        except KeyError as exc:
            raise ConfigError(where, f"missing key {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(where, str(exc)) from exc
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ConfigError(str(path), "two procedures share an id")
    unrecognized = data.get("unrecognized", {})
    return Routing(
        procedures=tuple(rules),
        unrecognized_name=str(unrecognized.get("name", "手続きを特定できないメール")),
        guidance_per_sender_per_day=int(unrecognized.get("guidance_per_sender_per_day", 1)),
    )


ROUTING_RULES = RulesFile("procedures.toml", _parse_routing)

UNRECOGNIZED = "unrecognized"


@dataclass(frozen=True)
class ThreadHit:
    """The case a mail answers, found by In-Reply-To/References or the case number."""

    case_id: int
    procedure: str
    outbound_kind: str | None


@dataclass(frozen=True)
class Classification:
    procedure: str
    case_id: int | None
    subject_code: str | None
    wrong_mailbox: bool
    expected_mailbox: str | None


def _by_subject(routing: Routing, subject: str) -> tuple[ProcedureRule, str | None] | None:
    candidates = sorted(
        (p for p in routing.procedures if p.pattern is not None),
        key=lambda p: len(p.subject or ""),
        reverse=True,
    )
    for rule in candidates:
        match = rule.match_subject(subject)
        if match:
            code = match.groupdict().get("operator_code")
            return rule, code.upper() if code else None
    return None


def classify(
    routing: Routing, subject: str, mailbox_local: str, thread: ThreadHit | None
) -> Classification:
    """Decide the procedure of one mail.

    A subject match names the procedure; when the thread points at a case of that same
    procedure the mail continues that case (a resubmission). Without a subject match, a mail
    in the thread of a case continues it, and a thread-only procedure (the mismatch inquiry)
    is recognised from the kind of mail it answers.
    """
    hit = _by_subject(routing, subject)
    if hit:
        rule, code = hit
        case_id = thread.case_id if thread and thread.procedure == rule.id else None
        return Classification(
            procedure=rule.id,
            case_id=case_id,
            subject_code=code,
            wrong_mailbox=rule.mailbox != mailbox_local,
            expected_mailbox=rule.mailbox,
        )
    if thread:
        for rule in routing.procedures:
            if rule.thread_only and thread.outbound_kind in rule.answers:
                return Classification(rule.id, thread.case_id, None, False, rule.mailbox)
        rule = routing.get(thread.procedure)
        return Classification(
            procedure=thread.procedure,
            case_id=thread.case_id,
            subject_code=None,
            wrong_mailbox=bool(rule and rule.mailbox != mailbox_local),
            expected_mailbox=rule.mailbox if rule else None,
        )
    return Classification(UNRECOGNIZED, None, None, False, None)
