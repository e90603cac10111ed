"""Subject and thread → procedure id. Pure: the caller looks the thread up in the store.

Longer subjects are tried first so that one procedure's subject that contains another's
never steals its mail.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.rules import ProcedureRule, Routing

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
