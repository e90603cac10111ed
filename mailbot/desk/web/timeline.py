"""A case's history in Japanese, as staff read it on the case page, with who did each step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailbot.context import Context
from mailbot.states import LABELS, Status, action_label, mail_kind

KIND_LABELS = {
    "opened": "案件を作成",
    "mail_received": "メールを受信",
    "mail_planned": "メールを送信キューへ",
    "mail_sent": "メールを送信",
    "status": "状態を変更",
    "problems": "不備・確認事項を記録",
    "decision": "判断を記録",
    "assigned": "担当を変更",
    "note": "メモ（内部用）",
    "staff_reply": "参加者へ返信",
    "duplicate": "同じメールを再受信",
    "robot_mail": "自動送信メールを受信（返信せず）",
    "bounced": "配信不能通知を受信",
    "staff_told_undeliverable": "配信不能を担当者へメールで通知",
    "staff_alert_withheld": "配信不能の担当者通知を見送り（通知の上限）",
    "quarantined": "隔離",
    "reply_skipped": "返信を見送り",
    "reply_suppressed": "自動返信を抑止",
    "in_thread": "別の案件のスレッドへのメールから作成",
    "staff_told_loop": "自動返信の上限を担当者へメールで通知",
    "code_issued": "事業者コードを発行",
    "grid_code_issued": "系統コードを発行",
    "code_not_needed": "コード不要と判定",
    "same_company_application": "同じ事業者名称の申請が処理中",
    "grid_code_not_needed": "系統コード不要と判定",
    "rejected": "却下",
    "closed": "完了",
    "held": "保留",
    "objection_refused": "異議申立を受付不可と判定",
    "roadmap_correction": "ロードマップ修正の案内",
    "participant_message": "参加者からメール（案件に追加）",
    "reminder": "督促メールを送信キューへ",
    "handled": "参加者のメールを対応済みに（返信なし）",
    "notice_sent": "通知書を送付",
    "message_id_collision": "同じMessage-IDの別メールを受信",
    "retried": "メールを再処理",
}
DETAIL_LABELS = {
    "action": "判断",
    "arg": "値",
    "reason": "理由",
    "old": "変更前",
    "new": "変更後",
    "to": "宛先",
    "subject": "件名",
    "sender": "差出人",
    "attachments": "添付",
    "text": "内容",
    "code": "コード",
    "cases": "案件",
    "why": "理由",
    "kind": "種類",
    "procedure": "手続き",
    "status": "状態",
    "occasion": "督促の区切り",
    "since": "未対応のメールの受信",
    "message": "メール",
    "root": "スレッドの最初の案件",
    "case": "案件",
    "dmarc_pass": "DMARC 合格",
}
HIDDEN = {"key", "message_id", "mailbox", "outbox", "problems", "defects"}


class _ProcedureNames(dict):
    """procedure id → its name, looked up as asked."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self._ctx = ctx

    def __missing__(self, key: str) -> str:
        self[key] = self._ctx.routing.name_of(key)
        return self[key]


@dataclass(frozen=True)
class Entry:
    at: str
    who: str
    what: str
    kind: str
    details: list[tuple[str, str]]


def who(actor: str, names: dict[str, str]) -> str:
    if actor == "bot":
        return "mailbot（自動）"
    if actor.startswith("staff:"):
        login = actor.removeprefix("staff:")
        return f"{names[login]}（{login}）" if login in names else login
    return actor


def _value(key: str, value: Any, names: dict[str, str] | None = None) -> str:
    if key in ("old", "new", "status") and isinstance(value, str):
        try:
            return LABELS[Status(value)]
        except ValueError:
            return value
    if key == "kind" and isinstance(value, str):
        return mail_kind(value)
    if key == "action" and isinstance(value, str):
        return action_label(value)
    if key == "procedure" and isinstance(value, str) and names is not None:
        return names[value]
    if value is None:
        return "なし"
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)


def timeline(ctx: Context, case_id: int, names: dict[str, str]) -> list[Entry]:
    """The case's events as staff read them: what happened, by whom, with the details in
    their Japanese names (mail kinds, decisions, procedures, statuses), never internal ids."""
    procedures = _ProcedureNames(ctx)
    out = []
    for event in ctx.store.events(case_id):
        detail = event["detail"]
        items = [
            (DETAIL_LABELS.get(k, k), _value(k, v, procedures))
            for k, v in detail.items()
            if k not in HIDDEN
            and v not in ("", [], {})
            and (v is not None or event["kind"] == "assigned")
        ]
        if event["kind"] == "problems":
            items = [(p["field"], p["message"]) for p in detail.get("problems", [])]
        out.append(
            Entry(
                at=event["at"],
                who=who(event["actor"], names),
                what=KIND_LABELS.get(event["kind"], event["kind"]),
                kind=event["kind"],
                details=items,
            )
        )
    return out
