"""Sessions, CSRF tokens and login throttling for the web desk.

The cookie carries a random token; the database keeps only its SHA-256, the login and the
session's CSRF token, so a disabled account or a logout ends the session on the server at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.context import Context
from mailbot.desk.staff import active_staff

SESSION_COOKIE = "mailbot_session"
LOGIN_CSRF_COOKIE = "mailbot_login_csrf"
THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_CLIENT = 20
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Session:
    token_hash: str
    login: str
    name: str
    csrf: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def start_session(ctx: Context, login: str) -> tuple[str, str]:
    """A new session for `login`: (cookie token, CSRF token)."""
    token, csrf = new_token(), new_token()
    with ctx.store.transaction():
        ctx.store.add_web_session(token_hash(token), login, csrf, ctx.now())
    return token, csrf


def current_session(ctx: Context, token: str | None, idle_hours: float) -> Session | None:
    """The live session behind a cookie: unknown, idle too long or of a disabled account → None
    (and the stale row is removed)."""
    if not token:
        return None
    digest = token_hash(token)
    row = ctx.store.web_session(digest)
    if row is None:
        return None

    now = ctx.now()
    seen = datetime.fromisoformat(row["seen_at"])
    account = active_staff(ctx, row["login"])
    if account is None or now - seen > timedelta(hours=idle_hours):
        with ctx.store.transaction():
            ctx.store.end_web_sessions(token_hash=digest)
        return None
    if now - seen > TOUCH_EVERY:
        with ctx.store.transaction():
            ctx.store.touch_web_session(digest, now)
    return Session(digest, row["login"], account["name"], row["csrf"])


def throttled(ctx: Context, login: str, client: str) -> bool:
    by_login, by_client = ctx.store.login_failures_since(
        ctx.now() - THROTTLE_WINDOW, login=login, client=client
    )
    return by_login >= MAX_FAILURES_PER_LOGIN or by_client >= MAX_FAILURES_PER_CLIENT


def record_failure(ctx: Context, login: str, client: str) -> None:
    with ctx.store.transaction():
        ctx.store.add_login_failure(login, client, ctx.now())
