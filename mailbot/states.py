"""Case states and the transitions allowed between them, written down once.

A case is a small state machine (Salmon's idea, without its globals). Every change goes
through `check_transition`, and the store records each one as an event.
"""

from __future__ import annotations

from enum import StrEnum

from mailbot.errors import MailbotError


class Status(StrEnum):
    RECEIVED = "received"
    NEEDS_CORRECTION = "needs_correction"
    COMPLETE = "complete"
    HELD = "held"
    UNRECOGNIZED = "unrecognized"
    QUARANTINED = "quarantined"
    AWAITING_REPLY = "awaiting_reply"
    DECIDED = "decided"
    CLOSED = "closed"
    IGNORED = "ignored"


S = Status

LABELS: dict[Status, str] = {
    Status.RECEIVED: "受付済",
    Status.NEEDS_CORRECTION: "修正依頼中",
    Status.COMPLETE: "確認待ち",
    Status.HELD: "保留（担当者確認）",
    Status.UNRECOGNIZED: "手続き不明",
    Status.QUARANTINED: "隔離",
    Status.AWAITING_REPLY: "回答待ち",
    Status.DECIDED: "決定済",
    Status.CLOSED: "完了",
    Status.IGNORED: "対応不要",
}
OPEN = frozenset(
    {
        S.RECEIVED,
        S.NEEDS_CORRECTION,
        S.COMPLETE,
        S.HELD,
        S.UNRECOGNIZED,
        S.QUARANTINED,
        S.AWAITING_REPLY,
        S.DECIDED,
    }
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset(OPEN | {S.CLOSED, S.IGNORED}),
    S.NEEDS_CORRECTION: frozenset({S.NEEDS_CORRECTION, S.COMPLETE, S.HELD, S.DECIDED, S.CLOSED}),
    S.COMPLETE: frozenset({S.COMPLETE, S.NEEDS_CORRECTION, S.HELD, S.DECIDED, S.CLOSED}),
    S.HELD: frozenset({S.HELD, S.NEEDS_CORRECTION, S.COMPLETE, S.DECIDED, S.CLOSED}),
    S.UNRECOGNIZED: frozenset({S.UNRECOGNIZED, S.CLOSED}),
    S.QUARANTINED: frozenset({S.QUARANTINED, S.CLOSED}),
    S.AWAITING_REPLY: frozenset(
        {S.AWAITING_REPLY, S.COMPLETE, S.NEEDS_CORRECTION, S.HELD, S.DECIDED, S.CLOSED}
    ),
    S.DECIDED: frozenset({S.DECIDED, S.AWAITING_REPLY, S.COMPLETE, S.CLOSED}),
    S.CLOSED: frozenset({S.CLOSED}),
    S.IGNORED: frozenset({S.IGNORED}),
}


class TransitionError(MailbotError):
    pass


def check_transition(old: str, new: str) -> None:
    if Status(new) not in TRANSITIONS[Status(old)]:
        raise TransitionError(f"a case cannot go from {old} to {new}")


# Staff decisions: the internal id (`mailbot decide CASE ID`, `--json`, the event log), the label
# staff see (cases, report dropdown, refusals), the states the action is taken in, and whether
# the participant must be told why (the reason goes into their mail).
ANY_OPEN = OPEN
ACTIONS: dict[str, tuple[str, frozenset[Status], bool]] = {
    "issue-code": ("コード発番・通知", frozenset({S.COMPLETE, S.HELD}), False),
    "reject": ("お断り（理由を通知）", ANY_OPEN, True),
    "objection-accepted": ("異議申立を認める", frozenset({S.COMPLETE, S.HELD}), False),
    "objection-rejected": (
        "異議申立を認めない（理由を通知）",
        frozenset({S.COMPLETE, S.HELD}),
        True,
    ),
    "ministry-correction": (
        "資源エネルギー庁の修正依頼を記録（メールなし）",
        frozenset({S.COMPLETE, S.AWAITING_REPLY, S.HELD}),
        False,
    ),
    "close": ("対応終了", ANY_OPEN, False),
}


def action_label(action: str) -> str:
    return ACTIONS[action][0] if action in ACTIONS else action


def action_id(text: str) -> str:
    """The action a staff member named, by its id or by its Japanese label."""
    text = text.strip()
    for action, (label, _states, _reason) in ACTIONS.items():
        if text in (action, label):
            return action
    return text


def allowed_actions(actions: tuple[str, ...], status: str) -> tuple[str, ...]:
    """Of a procedure's actions, those its case's state takes (what the dropdown offers)."""
    return tuple(a for a in actions if a not in ACTIONS or Status(status) in ACTIONS[a][1])


def status_label(status: str) -> str:
    return LABELS[Status(status)]


MAIL_KINDS = {
    "receipt": "受付のお知らせ",
    "correction": "不備のご連絡（修正のお願い）",
    "correction_reminder": "ご修正のお願い（再送）",
    "code_notice": "事業者コードの通知",
    "operator_code_notice": "事業者コードの通知",
    "grid_code_notice": "系統コードの通知",
    "code_not_needed": "コード不要のお知らせ",
    "rejection": "お断りのご連絡",
    "held": "確認中のお知らせ",
    "guidance": "ご案内",
    "staff_reply": "担当者からの返信",
    "objection_result": "異議申立の結果",
    "objection_refused": "異議申立を受け付けられない旨",
    "refusal": "異議申立を受け付けられない旨",
    "assessment_notice": "アセスメント結果通知",
    "reassessment_notice": "再アセスメント結果通知",
    "supply_start": "供給力提供開始時期の通知",
    "roadmap": "ロードマップ遵守の通知",
    "roadmap_inquiry": "ロードマップ改訂要否の確認",
    "roadmap_reminder": "ロードマップ回答期限のお知らせ",
    "roadmap_to_ministry": "資源エネルギー庁への送付",
    "mismatch_inquiry": "不一致に係る問合せ",
    "mismatch_reminder": "不一致に係る問合せ（再送）",
}
"""Our mails by kind, in the words staff use (the outbox's kind is an internal id)."""


def mail_kind(kind: str | None) -> str:
    """Our mail's kind as staff name it (the internal id when it has no name)."""
    return MAIL_KINDS.get(kind or "", kind or "")
