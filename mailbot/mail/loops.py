"""Who must never get an automatic answer (RFC 3834, bounces, lists, robots, ourselves).

Pure: decides from the parsed headers only.
"""

from __future__ import annotations

from mailbot.mail import Mail
from mailbot.mail.trust import TrustRules

NO_SENDER = "no usable sender address"
_SUPPRESS = {"all", "oof", "autoreply", "dr", "rn", "nrn"}


def no_reply_reason(
    mail: Mail, own_addresses: frozenset[str], own_domain: str, rules: TrustRules
) -> str | None:
    """Why this mail must not be answered automatically, or None when answering is fine.
    `own_addresses` are the desk's mailboxes and its staff; `rules` the robot patterns of
    rules/trust.toml (out-of-office subjects, robot senders) for robots that send none of
    the RFC 3834 headers. A sender found only below a broken header line is no sender: the
    mail is held for staff before anything else it claims is believed."""
    if mail.claimed_sender:
        return NO_SENDER
    if mail.is_delivery_report:
        return "delivery status report (bounce)"
    if mail.auto_submitted and mail.auto_submitted.strip().lower() != "no":
        return f"Auto-Submitted: {mail.auto_submitted.strip()}"
    if mail.precedence and mail.precedence.strip().lower() in {
        "bulk",
        "junk",
        "list",
        "auto_reply",
    }:
        return f"Precedence: {mail.precedence.strip()}"
    if mail.list_id or mail.list_headers:
        return "mailing list (List-* headers)"
    if mail.x_auto_response_suppress:
        values = {v.strip().lower() for v in mail.x_auto_response_suppress.split(",")}
        if values & _SUPPRESS:
            return f"X-Auto-Response-Suppress: {mail.x_auto_response_suppress.strip()}"
    if mail.return_path == "":
        return "empty Return-Path (<>)"
    if not mail.from_addr or "@" not in mail.from_addr:
        return NO_SENDER
    if mail.from_addr in own_addresses:
        return "sent from one of our own or staff addresses"
    if rules.robot_sender(mail.from_addr):
        return f"robot sender ({mail.from_addr})"
    marker = rules.robot_subject(mail.subject)
    if marker:
        return f"automatic reply by subject ({marker})"
    mid = (mail.message_id or "").lower()
    if mid.startswith("<mailbot.") and mid.rstrip(">").endswith("@" + own_domain.lower()):
        return "our own message came back"
    return None
