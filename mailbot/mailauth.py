"""Logging in to the mail servers: TLS contexts (`ca_file`), and OAuth2 access tokens for
SASL XOAUTH2 / OAUTHBEARER from Microsoft's identity platform (msal, client credentials),
Google (a refresh token, or a service account with domain-wide delegation) or any program
that prints one (`token_command`).

A token is cached per login settings and renewed `RENEW_BEFORE` seconds before it expires,
and once more when a server refuses it (revoked early, or a clock off). Secrets are read from
the environment or a file when a token is fetched, never logged, never in an error message.
This module opens no mailbox and sends nothing: imap.py and send.py call it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mailbot.config import GOOGLE_TOKEN_URI, OAuth2Config
from mailbot.errors import MailbotError

RENEW_BEFORE = 300.0
"""Seconds before its expiry a cached token is replaced: a login never starts with a token
about to lapse mid-session."""
RENEW_AFTER_REFUSAL = 60.0
"""A refused token is replaced only if it was fetched at least this long ago: one fetched
seconds before would come back the same, and a daemon retrying a refused login every few
seconds must not hammer the token endpoint (Entra ID throttles such loops)."""
JWT_LIFETIME = 3600


class TokenError(MailbotError):
    """No access token could be had: the endpoint refused, a secret is missing, the command
    failed. The message is one line and names no secret."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The system's trust store, or only the CA bundle in `ca_file` (a private CA).
    Raises MailbotError when the file cannot be read as certificates."""
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailbotError(f"ca_file {ca_file}: cannot be read as PEM certificates: {exc}") from exc


def certificate_problem(exc: BaseException, what: str) -> str | None:
    """One line for a TLS certificate the client did not trust, else None: `what` is the
    server ("imap host:port")."""
    while exc is not None and not isinstance(exc, ssl.SSLCertVerificationError):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    if exc is None:
        return None
    reason = getattr(exc, "verify_message", None) or str(exc)
    return (
        f"certificate verify failed for {what} ({reason}) — set ca_file to the CA that "
        "signed the server's certificate"
    )


def sasl_string(mechanism: str, user: str, token: str, host: str = "", port: int = 0) -> bytes:
    """The client's first SASL message, unencoded: XOAUTH2 (Google's and Microsoft's) or
    OAUTHBEARER (RFC 7628)."""
    if mechanism == "oauthbearer":
        name = user.replace("=", "=3D").replace(",", "=2C")
        where = f"host={host}\x01port={port}\x01" if host else ""
        return f"n,a={name},\x01{where}auth=Bearer {token}\x01\x01".encode()
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def one_line(text: str, limit: int = 200) -> str:
    """What a server or a program said, safe for one log line: control characters (a
    terminal escape, a line break that would forge a second log line) become spaces, runs
    of spaces one, at most `limit` characters."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:limit]


def server_answer(challenge: bytes) -> str:
    """What an XOAUTH2/OAUTHBEARER error challenge says (base64 JSON: status, schemes,
    scope), as one short line; the raw text when it is not that."""
    text = challenge.decode("utf-8", "replace").strip()
    try:
        decoded = json.loads(base64.b64decode(text, validate=True) if text else b"{}")
    except (ValueError, TypeError):
        try:
            decoded = json.loads(text)
        except ValueError:
            return one_line(text)
    if isinstance(decoded, dict):
        return one_line(" ".join(f"{k}={v}" for k, v in decoded.items()))
    return one_line(str(decoded))


BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750's b64token: what an access token may hold. Anything else (a line break, the
SASL separator %x01) would let a token source write into the SASL exchange."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float


class TokenSource(Protocol):
    def fetch(self, now: float) -> Token:
        """A fresh token (never a cached one). Raises TokenError."""
        ...


def _secret(env: str | None, file: Path | None, what: str) -> str:
    if env:
        value = os.environ.get(env)
        if not value:
            raise TokenError(f"{what}: environment variable {env} is not set")
        return value.strip()
    if file:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise TokenError(f"{what}: {file}: {exc.strerror}") from exc
    raise TokenError(f"{what}: not configured")


def _endpoint_error(what: str, answer: dict[str, Any]) -> TokenError:
    error = one_line(str(answer.get("error") or "no access_token in the answer"), 80)
    description = str(answer.get("error_description") or "").strip().splitlines()
    detail = f": {one_line(description[0])}" if description and description[0].strip() else ""
    return TokenError(f"{what} refused: {error}{detail}")


class MicrosoftSource:
    """Client credentials (app-only) through msal: a client secret, or a certificate (a PEM
    private key with its certificate, or with `certificate_thumbprint`). msal discovers the
    token endpoint from the authority's OpenID configuration; an authority other than
    Microsoft's (a test's loopback server, a national cloud's proxy) skips instance
    discovery."""

    def __init__(self, config: OAuth2Config) -> None:
        self.config = config
        self._app: Any = None

    def _credential(self) -> str | dict[str, str]:
        cfg = self.config
        if cfg.certificate_file is None:
            return _secret(cfg.client_secret_env, cfg.client_secret_file, "client secret")
        try:
            pem = cfg.certificate_file.read_bytes()
        except OSError as exc:
            raise TokenError(f"certificate_file {cfg.certificate_file}: {exc.strerror}") from exc
        thumbprint = cfg.certificate_thumbprint or _thumbprint(pem, cfg.certificate_file)
        return {"private_key": pem.decode("ascii", "replace"), "thumbprint": thumbprint}

    def _application(self) -> Any:
        import msal

        if self._app is None:
            cfg = self.config
            custom = not (cfg.authority or "").startswith("https://login.microsoftonline.com/")
            try:
                self._app = msal.ConfidentialClientApplication(
                    cfg.client_id,
                    client_credential=self._credential(),
                    authority=cfg.authority,
                    instance_discovery=False if custom else None,
                    http_client=_session(cfg),
                )
            except ValueError as exc:
                raise TokenError(f"authority {cfg.authority}: {_first_line(exc)}") from exc
            except OSError as exc:
                raise TokenError(f"authority {cfg.authority}: {_first_line(exc)}") from exc
        return self._app

    def fetch(self, now: float) -> Token:
        app = self._application()
        app.remove_tokens_for_client()
        try:
            answer = app.acquire_token_for_client(scopes=[self.config.scope])
        except (OSError, ValueError) as exc:
            raise TokenError(
                f"token endpoint of {self.config.authority}: {_first_line(exc)}"
            ) from exc
        if "access_token" not in answer:
            raise _endpoint_error(f"token endpoint of {self.config.authority}", answer)
        return Token(answer["access_token"], now + float(answer.get("expires_in", 3600)))


def _session(config: OAuth2Config) -> Any:
    """An HTTP session that checks the token endpoint against `ca_file` (when set) even
    where REQUESTS_CA_BUNDLE is set (requests lets that variable replace a session's own
    `verify`), with the configured timeout on every request. Proxies still come from the
    environment."""
    import requests

    class Session(requests.Session):
        def request(self, method: str | bytes, url: str | bytes, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", config.timeout)
            if config.ca_file:
                kwargs["verify"] = str(config.ca_file)
            return super().request(method, url, **kwargs)

    return Session()


def _thumbprint(pem: bytes, path: Path) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TokenError(
            f"certificate_file {path}: holds no certificate; set certificate_thumbprint"
        ) from exc
    return hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest().upper()


def _first_line(exc: BaseException) -> str:
    problem = certificate_problem(exc, "the token endpoint")
    if problem:
        return problem.replace("set ca_file", "set the oauth2 table's ca_file")
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {one_line(lines[0]) if lines else ''}"


def _post(url: str, form: dict[str, str], config: OAuth2Config, what: str) -> dict[str, Any]:
    import requests

    try:
        response = _session(config).post(url, data=form)
    except requests.RequestException as exc:
        raise TokenError(f"{what} {url}: {_first_line(exc)}") from exc
    try:
        answer = response.json()
    except ValueError:
        answer = {"error": f"HTTP {response.status_code}, not JSON"}
    if not isinstance(answer, dict):
        answer = {"error": f"HTTP {response.status_code}, not a JSON object"}
    if response.status_code != 200 or "access_token" not in answer:
        raise _endpoint_error(f"{what} {url}", answer)
    return answer


class GoogleSource:
    """A user's refresh token (an installed app's consent, kept in env/file), or a service
    account key with domain-wide delegation acting as `subject` (default: the login's user)
    through a signed JWT (RFC 7523, RS256), both exchanged at `token_uri`."""

    def __init__(self, config: OAuth2Config, user: str) -> None:
        self.config = config
        self.user = user

    def fetch(self, now: float) -> Token:
        cfg = self.config
        if cfg.service_account_file is not None:
            key = self._service_account()
            uri = cfg.token_uri or key.get("token_uri") or GOOGLE_TOKEN_URI
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": self._assertion(key, uri, now),
            }
        else:
            uri = cfg.token_uri or GOOGLE_TOKEN_URI
            form = {
                "grant_type": "refresh_token",
                "client_id": cfg.client_id or "",
                "client_secret": _secret(
                    cfg.client_secret_env, cfg.client_secret_file, "client secret"
                ),
                "refresh_token": _secret(
                    cfg.refresh_token_env, cfg.refresh_token_file, "refresh token"
                ),
            }
        answer = _post(uri, form, cfg, "token endpoint")
        return Token(answer["access_token"], now + float(answer.get("expires_in", 3600)))

    def _service_account(self) -> dict[str, Any]:
        path = self.config.service_account_file
        try:
            key = json.loads(path.read_text(encoding="utf-8"))  # type: ignore[union-attr]
        except (OSError, ValueError) as exc:
            raise TokenError(f"service_account_file {path}: cannot be read as a key") from exc
        if not isinstance(key, dict) or not key.get("client_email") or not key.get("private_key"):
            raise TokenError(f"service_account_file {path}: no client_email or private_key")
        return key

    def _assertion(self, key: dict[str, Any], uri: str, now: float) -> str:
        import jwt

        claims = {
            "iss": key["client_email"],
            "sub": self.config.subject or self.user,
            "scope": self.config.scope,
            "aud": uri,
            "iat": int(now),
            "exp": int(now) + JWT_LIFETIME,
        }
        headers = {"kid": key["private_key_id"]} if key.get("private_key_id") else None
        try:
            return jwt.encode(claims, key["private_key"], algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise TokenError(
                f"service_account_file {self.config.service_account_file}: private_key cannot sign"
            ) from exc


class CommandSource:
    """Any program that prints a token: plain text (kept `token_lifetime` seconds), or a JSON
    object with `access_token` and `expires_in`. Run without a shell; its stderr's last line
    is the reason when it fails."""

    def __init__(self, config: OAuth2Config) -> None:
        self.config = config

    def fetch(self, now: float) -> Token:
        cfg = self.config
        name = cfg.token_command[0]
        try:
            done = subprocess.run(
                list(cfg.token_command),
                capture_output=True,
                timeout=cfg.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TokenError(f"token_command {name}: {_first_line(exc)}") from exc
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            why = one_line(lines[-1]) if lines else "no message"
            raise TokenError(f"token_command {name} exited {done.returncode}: {why}")
        text = done.stdout.decode("utf-8", "replace").strip()
        lifetime = cfg.token_lifetime
        if text.startswith("{"):
            try:
                answer = json.loads(text)
            except ValueError as exc:
                raise TokenError(f"token_command {name}: printed invalid JSON") from exc
            text = str(answer.get("access_token") or "")
            lifetime = float(answer.get("expires_in", lifetime))
        if not text:
            raise TokenError(f"token_command {name}: printed no token")
        return Token(text, now + lifetime)


class Tokens:
    """The cached token of one login's settings: `get` renews it `RENEW_BEFORE` seconds
    before expiry; `renew` fetches a new one at once after a server refused the cached one.
    Thread-safe: the watchers of several mailboxes and the sender share it. `clock`: the
    seconds since the epoch, injected by tests."""

    def __init__(self, source: TokenSource, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock
        self._token: Token | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()
        self.fetched = 0

    def get(self) -> str:
        """The cached token, or a new one when there is none or it expires within
        RENEW_BEFORE seconds. Raises TokenError."""
        with self._lock:
            now = self.clock()
            if self._token is None or now >= self._token.expires_at - RENEW_BEFORE:
                token = self.source.fetch(now)
                if not BEARER.fullmatch(token.value):
                    raise TokenError("the token source gave no bearer token (RFC 6750 b64token)")
                self._token = token
                self._fetched_at = now
                self.fetched += 1
            return self._token.value

    def renew(self) -> str | None:
        """A new token in place of one a server refused; None when the cached one was
        fetched less than RENEW_AFTER_REFUSAL seconds ago (the refusal stands). Raises
        TokenError."""
        with self._lock:
            if self._token is not None and self.clock() - self._fetched_at < RENEW_AFTER_REFUSAL:
                return None
            self._token = None
        return self.get()


_SHARED: dict[tuple[OAuth2Config, str], Tokens] = {}
_SHARED_LOCK = threading.Lock()


def tokens_for(config: OAuth2Config, user: str) -> Tokens:
    """The process's one token cache for these settings: a Microsoft app's token serves every
    mailbox it may open, so the IMAP watchers and the sender share it; a Google login's
    depends on the user it acts as."""
    key = (config, user if config.provider == "google" else "")
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = Tokens(make_source(config, user))
        return _SHARED[key]


def make_source(config: OAuth2Config, user: str) -> TokenSource:
    if config.provider == "microsoft":
        return MicrosoftSource(config)
    if config.provider == "google":
        return GoogleSource(config, user)
    return CommandSource(config)


def _after_fork_in_child() -> None:
    """A forked worker or sender starts with fresh locks: one a thread of the parent held at
    the fork would never be released in the child."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    for tokens in _SHARED.values():
        tokens._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
