"""Who must never get an automatic answer (RFC 3834, bounces, lists, robots, ourselves).

Pure: decides from the parsed headers only.
"""

from __future__ import annotations

import re

from mailbot.mail import Mail

_ROBOT_LOCAL = re.compile(
    r"^(?:no-?reply|do-?not-?reply|mailer-daemon|postmaster|bounces?|auto-?reply|daemon)"
    r"(?:[+\-._].*)?$",
    re.I,
)
_SUPPRESS = {"all", "oof", "autoreply", "dr", "rn", "nrn"}


def no_reply_reason(mail: Mail, own_addresses: frozenset[str], own_domain: str) -> str | None:
    """Why this mail must not be answered automatically, or None when answering is fine."""
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
        return "no usable sender address"
    if mail.from_addr in own_addresses:
        return "sent from one of our own addresses"
    local = mail.from_addr.split("@", 1)[0]
    if _ROBOT_LOCAL.match(local):
        return f"robot sender ({mail.from_addr})"
    mid = (mail.message_id or "").lower()
    if mid.startswith("<mailbot.") and mid.rstrip(">").endswith("@" + own_domain.lower()):
        return "our own message came back"
    return None
