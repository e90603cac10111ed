"""Sessions, CSRF tokens, the client's address and login throttling for the web desk.

The cookie carries a random token; the database keeps only its SHA-256, the login and the
session's CSRF token, so a disabled account or a logout ends the session on the server at once.

Throttling never lets a stranger lock staff out of a browser they logged in from within the
last 90 days (a password change keeps those browsers; disabling the account forgets them).
Failures count per (login, client): five in 15 minutes close that pair, which only the
guesser uses. Twenty from one client over any logins close that client. Ten for one login
from browsers it never logged in from close password login for that login from unknown
browsers only: a browser that logged in as that login before carries a cookie
(`mailbot_login_device`, only its hash kept) whose attempts count on their own, so the staff
member at their usual browser still gets in with the right password while a distributed
guesser gets ten tries per window. At a new browser (or after clearing cookies) a guesser from
many addresses can keep password login closed for that login until the window passes. Refused attempts write nothing, so
hammering a closed door does not keep it closed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailbot.config import WebConfig
from mailbot.context import Context
from mailbot.desk.staff import active_staff
from mailbot.store.desk import LoginLimits

SESSION_COOKIE = "mailbot_session"
LOGIN_CSRF_COOKIE = "mailbot_login_csrf"
DEVICE_COOKIE = "mailbot_login_device"
THROTTLE_WINDOW = timedelta(minutes=15)
LIMITS = LoginLimits(per_pair=5, per_client=20, per_login=10)
DEVICE_DAYS = 90
TOUCH_EVERY = timedelta(minutes=1)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
    """Constant-time equality of two tokens; text from a form may be any Unicode, which
    `compare_digest` refuses as str, so both are compared as UTF-8."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


def start_session(ctx: Context, login: str) -> tuple[str, str]:
    """A new session for `login`: (cookie token, CSRF token)."""
    token, csrf = new_token(), new_token()
    with ctx.store.transaction():
        ctx.store.add_web_session(token_hash(token), login, csrf, ctx.now())
    return token, csrf


def current_session(ctx: Context, token: str | None, web: WebConfig) -> Session | None:
    """The live session behind a cookie: unknown, idle longer than `session_hours`, older than
    `session_max_hours` or of a disabled account → None (and the stale row is removed)."""
    if not token:
        return None
    digest = token_hash(token)
    row = ctx.store.web_session(digest)
    if row is None:
        return None

    now = ctx.now()
    seen = datetime.fromisoformat(row["seen_at"])
    started = datetime.fromisoformat(row["created_at"])
    account = active_staff(ctx, row["login"])
    if (
        account is None
        or now - seen > timedelta(hours=web.session_hours)
        or now - started > timedelta(hours=web.session_max_hours)
    ):
        with ctx.store.transaction():
            ctx.store.end_web_sessions(token_hash=digest)
        return None
    if now - seen > TOUCH_EVERY:
        with ctx.store.transaction():
            ctx.store.touch_web_session(digest, now)
    return Session(digest, row["login"], account["name"], row["csrf"])


def prune(ctx: Context, web: WebConfig) -> None:
    """Forget what can no longer count: ended sessions, failures older than the window,
    browsers not seen for `DEVICE_DAYS`. Runs with every login, so the tables stay as small
    as their use (call inside a transaction)."""
    now = ctx.now()
    ctx.store.prune_web_auth(
        idle_before=now - timedelta(hours=web.session_hours),
        started_before=now - timedelta(hours=web.session_max_hours),
        failures_before=now - THROTTLE_WINDOW,
        devices_before=now - timedelta(days=DEVICE_DAYS),
    )


@dataclass(frozen=True)
class Attempt:
    row: int
    login: str
    client: str
    device: str | None


def known_device(ctx: Context, cookie: str | None, login: str) -> str | None:
    """The hash of this browser's device cookie when it logged in as `login` lately."""
    if not cookie:
        return None
    digest = token_hash(cookie)
    since = ctx.now() - timedelta(days=DEVICE_DAYS)
    return digest if ctx.store.login_device(digest, login, since) else None


def begin_attempt(
    ctx: Context, web: WebConfig, login: str, client: str, device: str | None
) -> Attempt | None:
    """Reserve a password check, or None when throttled (see the module's text). The check
    and the reservation are one write transaction, so concurrent failures cannot pass the
    limit between a count and an insert."""
    with ctx.store.transaction():
        prune(ctx, web)
        row = ctx.store.reserve_login_attempt(
            ctx.now(),
            ctx.now() - THROTTLE_WINDOW,
            login=login,
            client=client,
            device=device,
            limits=LIMITS,
        )
    return None if row is None else Attempt(row, login, client, device)


def succeeded(ctx: Context, attempt: Attempt, device_cookie: str | None) -> tuple[str, str, str]:
    """The password was right: forgive this pair's failures, remember the browser, start a
    session. Returns (session token, CSRF token, device cookie)."""
    cookie = device_cookie if attempt.device else new_token()
    with ctx.store.transaction():
        ctx.store.clear_login_failures(
            attempt.row, login=attempt.login, client=attempt.client, device=attempt.device
        )
        ctx.store.add_login_device(token_hash(cookie), attempt.login, ctx.now())
    token, csrf = start_session(ctx, attempt.login)
    return token, csrf, cookie


@dataclass(frozen=True)
class TrustedProxies:
    """`[web] trusted_proxies`: peers whose X-Forwarded-For (and user header) is believed."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(e, strict=False) for e in entries))

    def trusts(self, address: str | None) -> bool:
        found = _address(address or "")
        return found is not None and any(found in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client's address: the peer itself unless it is a trusted proxy; behind one,
        the right-most X-Forwarded-For hop that is not a trusted proxy. Hops to its left
        were written by whoever sent the request and prove nothing."""
        if not self.trusts(peer):
            return _normal(peer) or "-"
        hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return _normal(hop) or hop[:64]
        return _normal(hops[0]) if hops and _normal(hops[0]) else _normal(peer) or "-"


def _address(text: str) -> IPAddress | None:
    """An address as proxies write it: bare, `[v6]:port` or `v4:port`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped:
        return found.ipv4_mapped
    return found


def _normal(text: str | None) -> str | None:
    """The throttle's name for an address: an IPv6 client is its /64, which one end site
    holds whole and could otherwise rotate through address by address."""
    found = _address(text or "")
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found) if found is not None else None
