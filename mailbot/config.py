"""Configuration: the TOML file of SPEC §9, or the embedded default.

The embedded default is what a fresh checkout runs on: Maildir in (`data/inbox/<name>/`),
Maildir out (`data/outbox/`), SQLite at `data/mailbot.db`, relative to the directory the command
runs in. In a config file, relative paths are taken from the file's folder (a deployment made by
`mailbot init`). Either way data never lands in the installed package. Every file is checked
against `SCHEMA` first. This module never opens a mailbox or the database.
"""

from __future__ import annotations

import difflib
import importlib.resources
import ipaddress
import os
import tomllib
import urllib.parse
from dataclasses import dataclass, field, replace
from math import inf
from pathlib import Path
from typing import Any

from mailbot.errors import ConfigError

DEFAULT_CONFIG = """
[storage]
database = "data/mailbot.db"

[[mailboxes]]
address = "code@occto.or.jp"
backend = "maildir"
path = "data/inbox/code"
# backend = "imap"
# host = "imap.example.jp"
# port = 993
# security = "ssl"
# username = "code"
# password_env = "MAILBOT_IMAP_PASSWORD_CODE"
# ca_file = "certs/ca.pem"        # a private CA
# auth = "oauth2"                 # Microsoft 365, Gmail: an [mailboxes.oauth2] table (README)

[[mailboxes]]
address = "youryou_rikuase_long@occto.or.jp"
backend = "maildir"
path = "data/inbox/youryou_rikuase_long"

[outgoing]
backend = "maildir"
path = "data/outbox"
# backend = "smtp"
# host = "smtp.example.jp"
# port = 587
# security = "starttls"
# username = "code@occto.or.jp"
# password_env = "MAILBOT_SMTP_PASSWORD"
# auth = "oauth2"                 # with an [outgoing.oauth2] table (README)

[staff]
addresses = ["capacity-desk@occto.or.jp"]
"""
"""The embedded default, and the body of the config `mailbot init` writes (desk/deploy.py): its
comments show the server keys a deployment switches to."""

SECURITY = ("ssl", "starttls", "none")
MAX_SESSION_HOURS = 8760

_SERVER_KEYS = {
    "backend": "str",
    "path": "str",
    "host": "str",
    "port": "port",
    "security": "str",
    "username": "str",
    "password": "str",
    "password_env": "str",
    "password_file": "str",
    "ca_file": "str",
    "allow_plaintext": "bool",
    "auth": "str",
    "oauth2": "table",
}
"""What a mailbox and the outgoing server both take: a Maildir path, or a server to log in to."""

OAUTH2_KEYS = {
    "provider": "str",
    "mechanism": "str",
    "tenant": "str",
    "client_id": "str",
    "authority": "str",
    "scope": "str",
    "client_secret_env": "str",
    "client_secret_file": "str",
    "certificate_file": "str",
    "certificate_thumbprint": "str",
    "refresh_token_env": "str",
    "refresh_token_file": "str",
    "service_account_file": "str",
    "subject": "str",
    "token_uri": "str",
    "token_command": "str_list",
    "token_lifetime": "positive_number",
    "ca_file": "str",
    "timeout": "positive_number",
}
"""`[mailboxes.oauth2]`, `[outgoing.oauth2]`, `[mailboxes.outgoing.oauth2]`: where the access
token comes from. No key holds a secret itself: secrets are named by environment variable or
file."""

MAILBOX_OUTGOING_KEYS = {k: v for k, v in _SERVER_KEYS.items() if k not in ("backend", "path")}
"""`[mailboxes.outgoing]`: this mailbox's own SMTP login for the replies it sends."""

SUBTABLES: dict[str, dict[str, str]] = {
    "oauth2": OAUTH2_KEYS,
    "outgoing": MAILBOX_OUTGOING_KEYS,
}
"""The tables inside a server table, by key, with the keys each takes."""

SCHEMA: dict[str, tuple[str, dict[str, str]]] = {
    "storage": ("table", {"database": "str"}),
    "mailboxes": (
        "array",
        _SERVER_KEYS
        | {
            "address": "str",
            "folder": "str",
            "move_to": "str",
            "poll_interval": "positive_number",
            "outgoing": "table",
        },
    ),
    "outgoing": (
        "table",
        _SERVER_KEYS
        | {
            "charset": "str",
            "from_name": "str",
            "message_id_domain": "str",
            "timeout": "positive_number",
        },
    ),
    "staff": ("table", {"addresses": "str_list"}),
    "limits": (
        "table",
        {
            "max_message_bytes": "positive_int",
            "max_attachment_bytes": "positive_int",
            "auto_replies_per_sender_per_day": "positive_int",
        },
    ),
    "paths": ("table", {"rules": "str", "templates": "str"}),
    "web": (
        "table",
        {
            "host": "str",
            "port": "port",
            "secure_cookies": "bool",
            "session_hours": "positive_number",
            "session_max_hours": "positive_number",
            "trusted_proxies": "str_list",
            "trusted_user_header": "str",
            "base_url": "str",
            "connections_per_client": "positive_int",
        },
    ),
    "trust": ("table", {"authserv_ids": "str_list"}),
    "monitoring": (
        "table",
        {
            "listen": "str",
            "metrics_token_env": "str",
            "metrics_token_file": "str",
            "trusted_networks": "str_list",
            "mailbox_alert_minutes": "positive_number",
            "reply_due_minutes": "positive_number",
        },
    ),
}
"""Every table and key a config may hold, with the kind of value each takes. One schema:
`validate` checks a parsed file against it before anything is built from it."""

_KINDS = {
    "str": "a string",
    "port": "a port number (1-65535)",
    "positive_int": "a whole number above 0",
    "positive_number": "a number above 0",
    "str_list": "a list of strings",
    "bool": "true or false",
    "table": "a table",
}


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"


def _kind_ok(kind: str, value: Any) -> bool:
    """TOML booleans are never numbers here: `max_message_bytes = true` is an error, not 1."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if isinstance(value, bool):
        return False
    if kind == "str":
        return isinstance(value, str)
    if kind == "port":
        return isinstance(value, int) and 1 <= value <= 65535
    if kind == "positive_int":
        return isinstance(value, int) and value > 0
    if kind == "positive_number":
        return isinstance(value, int | float) and 0 < value < inf
    if kind == "str_list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise AssertionError(kind)


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, bool) else str(value).lower()
    return text if len(text) <= 40 else text[:37] + "..."


def validate(data: dict[str, Any]) -> None:
    """Refuse what the schema does not know, with the nearest known name: a misspelt key
    (`secruity`, `[stafff]`) would otherwise be ignored silently and its default used."""
    tables = list(SCHEMA)
    for name, value in data.items():
        if name not in SCHEMA:
            raise ConfigError(name, "unknown table" + _suggest(name, tables))
        shape, keys = SCHEMA[name]
        if shape == "array":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(
                    name, f"must be an array of tables ([[{name}]]), got {_shown(value)}"
                )
            entries = [(f"{name}[{i}]", entry) for i, entry in enumerate(value)]
        else:
            if not isinstance(value, dict):
                raise ConfigError(name, f"must be a table ([{name}]), got {_shown(value)}")
            entries = [(name, value)]
        for where, entry in entries:
            _validate_table(where, entry, keys)


def _validate_table(where: str, entry: dict[str, Any], keys: dict[str, str]) -> None:
    for key, item in entry.items():
        if key not in keys:
            raise ConfigError(f"{where}.{key}", "unknown key" + _suggest(key, list(keys)))
        if not _kind_ok(keys[key], item):
            raise ConfigError(f"{where}.{key}", f"must be {_KINDS[keys[key]]}, got {_shown(item)}")
        if keys[key] == "table":
            _validate_table(f"{where}.{key}", item, SUBTABLES[key])


PACKAGE_DIR = Path(str(importlib.resources.files("mailbot")))
RULES_DIR = PACKAGE_DIR / "rules"
TEMPLATES_DIR = PACKAGE_DIR / "templates"


AUTH = ("password", "oauth2", "none")
PROVIDERS = ("microsoft", "google", "command")
MECHANISMS = ("xoauth2", "oauthbearer")
MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GOOGLE_SCOPE = "https://mail.google.com/"
_PROVIDER_KEYS = {
    "microsoft": (
        "tenant",
        "client_id",
        "authority",
        "scope",
        "client_secret_env",
        "client_secret_file",
        "certificate_file",
        "certificate_thumbprint",
        "ca_file",
        "timeout",
    ),
    "google": (
        "client_id",
        "client_secret_env",
        "client_secret_file",
        "refresh_token_env",
        "refresh_token_file",
        "service_account_file",
        "subject",
        "token_uri",
        "scope",
        "ca_file",
        "timeout",
    ),
    "command": ("token_command", "token_lifetime", "timeout"),
}
"""Which `oauth2` keys each provider reads (besides `provider` and `mechanism`): another key
means the table is not what its author thinks, and is refused."""


@dataclass(frozen=True)
class OAuth2Config:
    """Where a server login's access token comes from (`mailbot/mailauth.py` fetches it).
    Secrets are only named here (environment variable or file), read when a token is
    fetched. Frozen and hashable: logins with the same settings share one cached token."""

    provider: str
    mechanism: str = "xoauth2"
    client_id: str | None = None
    authority: str | None = None
    scope: str | None = None
    client_secret_env: str | None = None
    client_secret_file: Path | None = None
    certificate_file: Path | None = None
    certificate_thumbprint: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: Path | None = None
    service_account_file: Path | None = None
    subject: str | None = None
    token_uri: str | None = None
    token_command: tuple[str, ...] = ()
    token_lifetime: float = 600.0
    ca_file: Path | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class MailboxConfig:
    address: str
    backend: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    security: str = "ssl"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    folder: str = "INBOX"
    move_to: str | None = None
    poll_interval: float = 60.0
    password_problem: str | None = None
    allow_plaintext: bool = False
    ca_file: Path | None = None
    auth: str = "password"
    oauth2: OAuth2Config | None = None
    outgoing: OutgoingConfig | None = None

    def require_password(self) -> None:
        """A missing `password_env` stops only what logs in, so `cases`, `report` and the
        other rows of `doctor` still work while the environment is being fixed."""
        if self.password_problem:
            raise ConfigError(f"mailbox {self.address}", self.password_problem)

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0].lower()


@dataclass(frozen=True)
class OutgoingConfig:
    backend: str
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    charset: str = "utf-8"
    from_name: str = ""
    message_id_domain: str | None = None
    timeout: float = 30.0
    password_problem: str | None = None
    allow_plaintext: bool = False
    ca_file: Path | None = None
    auth: str = "password"
    oauth2: OAuth2Config | None = None
    envelope_from: str | None = None
    name: str = "outgoing"

    def require_password(self) -> None:
        if self.password_problem:
            raise ConfigError(self.name, self.password_problem)

    @property
    def logs_in(self) -> bool:
        """Whether a connection authenticates: OAuth2, or a user name with a password."""
        if self.auth == "oauth2":
            return True
        return self.auth == "password" and bool(self.username) and self.password is not None


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 30 * 1024 * 1024
    max_attachment_bytes: int = 20 * 1024 * 1024
    auto_replies_per_sender_per_day: int = 20


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: where `mailbot web` listens and whom it trusts (SPEC §10)."""

    host: str = "127.0.0.1"
    port: int = 8080
    secure_cookies: bool = True
    session_hours: float = 10.0
    session_max_hours: float = 12.0
    trusted_proxies: tuple[str, ...] = ()
    trusted_user_header: str | None = None
    base_url: str | None = None
    connections_per_client: int = 16


LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class MonitoringConfig:
    """`[monitoring]`: /healthz and /metrics (README "Operations").

    `listen` ("HOST:PORT") makes `mailbot run` serve both itself (the web desk always serves
    them). /metrics answers a bearer token (from `metrics_token_env` or `metrics_token_file`)
    or a peer in `trusted_networks` (default: loopback only). A mailbox unreadable for
    `mailbox_alert_minutes` is mailed to `[staff] addresses` (then at most hourly) and makes
    /healthz fail, as does a reply due for `reply_due_minutes` and not sent."""

    listen: tuple[str, int] | None = None
    metrics_token: str | None = field(default=None, repr=False)
    token_problem: str | None = None
    trusted_networks: tuple[str, ...] = LOOPBACK
    mailbox_alert_minutes: float = 15.0
    reply_due_minutes: float = 30.0


@dataclass(frozen=True)
class Config:
    database: Path
    mailboxes: tuple[MailboxConfig, ...]
    outgoing: OutgoingConfig
    staff_addresses: tuple[str, ...]
    rules_dir: Path
    templates_dir: Path
    limits: Limits
    source: str
    web: WebConfig = WebConfig()
    authserv_ids: tuple[str, ...] = ()
    monitoring: MonitoringConfig = MonitoringConfig()

    def mailbox_for(self, address: str) -> MailboxConfig | None:
        address = address.lower()
        for box in self.mailboxes:
            if box.address.lower() == address:
                return box
        return None

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(box.address.lower() for box in self.mailboxes)

    def our_authserv_id(self, authserv_id: str) -> bool:
        """An Authentication-Results header stamped by our receiving MTA (RFC 8601 authserv-id):
        one of `[trust] authserv_ids`. The MTA removes headers arriving with its own id (RFC
        8601 §5), so only its own verdict carries one. Unset, no header is ours (no pass
        vouches; `mailbot doctor` warns): a host name under our own domain proves nothing
        when the receiving MTA stamps another id and leaves a forged one in place."""
        return authserv_id.strip().lower().rstrip(".") in self.authserv_ids

    def case_url(self, case_id: int) -> str | None:
        """The web desk's page of a case, when `[web] base_url` says where the desk is."""
        return f"{self.web.base_url}/cases/{int(case_id)}" if self.web.base_url else None

    @property
    def message_id_domain(self) -> str:
        if self.outgoing.message_id_domain:
            return self.outgoing.message_id_domain
        return self.mailboxes[0].address.split("@", 1)[1] if self.mailboxes else "mailbot.invalid"


def _get(table: dict[str, Any], key: str, where: str, kind: type, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise ConfigError(f"{where}.{key}", "is required")
        return default
    value = table[key]
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}.{key}", f"must be a {kind.__name__}, got {value}")
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}", f"must be a {kind.__name__}, got {value!r}")
    return value


def _password(table: dict[str, Any], where: str, base: Path) -> dict[str, str | None]:
    """The password, or why there is none (checked when mailbot logs in, not at load):
    `password_env` (an environment variable), `password_file` (its first line; a file only
    the desk's user reads) or `password`. Two of them are refused."""
    given = [k for k in ("password", "password_env", "password_file") if k in table]
    if len(given) > 1:
        raise ConfigError(f"{where}.{given[1]}", f"give one of {', '.join(given)}")
    if "password_file" in table:
        file = base / _get(table, "password_file", where, str)
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            return {"password": None, "password_problem": f"password_file: {file}: {exc.strerror}"}
        return {"password": lines[0] if lines else ""}
    if "password_env" in table:
        name = _get(table, "password_env", where, str)
        if name not in os.environ:
            return {
                "password": None,
                "password_problem": f"password_env: environment variable {name} is not set",
            }
        return {"password": os.environ[name]}
    return {"password": _get(table, "password", where, str, None)}


def _security(table: dict[str, Any], where: str, default: str) -> str:
    value = _get(table, "security", where, str, default)
    if value not in SECURITY:
        raise ConfigError(f"{where}.security", f"must be one of {', '.join(SECURITY)}")
    return value


def _plaintext(
    table: dict[str, Any],
    where: str,
    security: str,
    host: str | None = None,
    auth: str | None = None,
    allowed_by_default: bool = False,
) -> dict[str, bool]:
    """`security = "none"` sends the password (or OAuth2 token) as written to whoever is on
    the path: allowed to a loopback host (a local relay), and elsewhere only with
    `allow_plaintext = true` in that server's table, which `mailbot doctor` then reports as a
    warning. `host`, `auth` and `allowed_by_default` are what a `[mailboxes.outgoing]` table
    inherits from `[outgoing]`; a server table names its own.

    Returns the `allow_plaintext` field; raises ConfigError for a login sent to another host
    in clear text without it."""
    allowed = _get(table, "allow_plaintext", where, bool, allowed_by_default)
    host = host if host is not None else _get(table, "host", where, str)
    keys = ("username", "password", "password_env", "password_file")
    if auth is not None:  # a [mailboxes.outgoing]: its login is required unless auth = "none"
        sends_login = auth != "none"
    else:
        sends_login = any(key in table for key in keys) or table.get("auth") == "oauth2"
    if security == "none" and sends_login and not allowed and not is_loopback(host):
        raise ConfigError(
            f"{where}.security",
            f'"none" sends the login in clear text to {host}: use "ssl" or "starttls", or set'
            " allow_plaintext = true in this table for a trusted network",
        )
    return {"allow_plaintext": allowed}


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1, as written (a name is never resolved for this)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


SERVER_ONLY = (
    "host",
    "port",
    "security",
    "username",
    "password",
    "password_env",
    "password_file",
    "ca_file",
    "allow_plaintext",
    "auth",
    "oauth2",
)
BACKEND_ONLY = {
    "maildir": (*SERVER_ONLY, "folder", "move_to"),
    "imap": ("path",),
    "smtp": ("path",),
}
"""Keys a backend does not use: given anyway, they mean the entry is not what its author
thinks (a `host` on a maildir mailbox would be ignored), so they are refused."""


def _unused_keys(table: dict[str, Any], where: str, backend: str) -> None:
    for key in BACKEND_ONLY.get(backend, ()):
        if key in table:
            raise ConfigError(f"{where}.{key}", f'not used with backend = "{backend}"')


def _path(table: dict[str, Any], key: str, where: str, base: Path) -> Path | None:
    value = _get(table, key, where, str, None)
    return base / value if value else None


def _one_of(table: dict[str, Any], where: str, keys: tuple[str, ...]) -> str:
    given = [key for key in keys if key in table]
    if len(given) != 1:
        raise ConfigError(where, f"give exactly one of {', '.join(keys)}")
    return given[0]


def _oauth2(table: dict[str, Any], where: str, base: Path) -> OAuth2Config:
    """An `oauth2` table, checked as its provider reads it: a key its provider does not use,
    a missing secret or two secrets for one login are refused at load."""
    provider = _get(table, "provider", where, str)
    if provider not in PROVIDERS:
        raise ConfigError(f"{where}.provider", f"must be one of {', '.join(PROVIDERS)}")
    mechanism = _get(table, "mechanism", where, str, "xoauth2").lower()
    if mechanism not in MECHANISMS:
        raise ConfigError(f"{where}.mechanism", f"must be one of {', '.join(MECHANISMS)}")
    for key in table:
        if key not in ("provider", "mechanism", *_PROVIDER_KEYS[provider]):
            raise ConfigError(f"{where}.{key}", f'not used with provider = "{provider}"')
    common: dict[str, Any] = {
        "provider": provider,
        "mechanism": mechanism,
        "ca_file": _path(table, "ca_file", where, base),
        "timeout": _get(table, "timeout", where, float, 30.0),
    }
    if provider == "command":
        command = _get(table, "token_command", where, list)
        if not command or not command[0]:
            raise ConfigError(f"{where}.token_command", "names no program")
        return OAuth2Config(
            **common,
            token_command=tuple(command),
            token_lifetime=_get(table, "token_lifetime", where, float, 600.0),
        )
    secrets = {
        "client_secret_env": _get(table, "client_secret_env", where, str, None),
        "client_secret_file": _path(table, "client_secret_file", where, base),
    }
    if provider == "microsoft":
        tenant = _get(table, "tenant", where, str, None)
        authority = _get(table, "authority", where, str, None)
        if not tenant and not authority:
            raise ConfigError(f"{where}.tenant", "is required (the directory (tenant) ID)")
        credential = _one_of(
            table, where, ("client_secret_env", "client_secret_file", "certificate_file")
        )
        if "certificate_thumbprint" in table and credential != "certificate_file":
            raise ConfigError(f"{where}.certificate_thumbprint", "is used with certificate_file")
        return OAuth2Config(
            **common,
            **secrets,
            client_id=_get(table, "client_id", where, str),
            authority=(authority or MICROSOFT_AUTHORITY.format(tenant=tenant)).rstrip("/"),
            scope=_get(table, "scope", where, str, MICROSOFT_SCOPE),
            certificate_file=_path(table, "certificate_file", where, base),
            certificate_thumbprint=_get(table, "certificate_thumbprint", where, str, None),
        )
    scope = _get(table, "scope", where, str, GOOGLE_SCOPE)
    if "service_account_file" in table:
        for key in ("client_id", "client_secret_env", "client_secret_file"):
            if key in table:
                raise ConfigError(f"{where}.{key}", "not used with service_account_file")
        for key in ("refresh_token_env", "refresh_token_file"):
            if key in table:
                raise ConfigError(f"{where}.{key}", "not used with service_account_file")
        return OAuth2Config(
            **common,
            scope=scope,
            service_account_file=_path(table, "service_account_file", where, base),
            subject=_get(table, "subject", where, str, None),
            token_uri=_get(table, "token_uri", where, str, None),
        )
    if "subject" in table:
        raise ConfigError(f"{where}.subject", "is used with service_account_file")
    _one_of(table, where, ("client_secret_env", "client_secret_file"))
    _one_of(table, where, ("refresh_token_env", "refresh_token_file"))
    return OAuth2Config(
        **common,
        **secrets,
        client_id=_get(table, "client_id", where, str),
        scope=scope,
        refresh_token_env=_get(table, "refresh_token_env", where, str, None),
        refresh_token_file=_path(table, "refresh_token_file", where, base),
        token_uri=_get(table, "token_uri", where, str, GOOGLE_TOKEN_URI),
    )


def _credentials(
    table: dict[str, Any], where: str, base: Path, auth: str, shared: OAuth2Config | None = None
) -> dict[str, Any]:
    """How a server login authenticates: a password (or why there is none), an OAuth2 token
    source, or nothing. `shared`: the oauth2 table a `[mailboxes.outgoing]` without its own
    reuses from `[outgoing]`."""
    if auth not in AUTH:
        raise ConfigError(f"{where}.auth", f"must be one of {', '.join(AUTH)}")
    if auth != "password":
        for key in ("password", "password_env", "password_file"):
            if key in table:
                raise ConfigError(f"{where}.{key}", f'not used with auth = "{auth}"')
    if auth != "oauth2" and "oauth2" in table:
        raise ConfigError(f"{where}.oauth2", 'is used only with auth = "oauth2"')
    if auth == "oauth2":
        if "oauth2" in table:
            oauth2 = _oauth2(table["oauth2"], f"{where}.oauth2", base)
        elif shared is not None:
            oauth2 = shared
        else:
            raise ConfigError(f"{where}.oauth2", 'is required with auth = "oauth2"')
        return {"auth": auth, "oauth2": oauth2, "password": None}
    if auth == "none":
        return {"auth": auth, "password": None}
    return {"auth": auth, **_password(table, where, base)}


def _mailbox(
    table: dict[str, Any], index: int, base: Path, outgoing: OutgoingConfig
) -> MailboxConfig:
    where = f"mailboxes[{index}]"
    address = _get(table, "address", where, str)
    if "@" not in address:
        raise ConfigError(f"{where}.address", f"not a mail address: {address!r}")
    backend = _get(table, "backend", where, str)
    _unused_keys(table, where, backend)
    sending = (
        _mailbox_outgoing(table["outgoing"], f"{where}.outgoing", base, outgoing, address)
        if "outgoing" in table
        else None
    )
    if backend == "maildir":
        return MailboxConfig(
            address=address,
            backend=backend,
            path=base / _get(table, "path", where, str),
            poll_interval=_get(table, "poll_interval", where, float, 5.0),
            outgoing=sending,
        )
    if backend == "imap":
        security = _security(table, where, "ssl")
        if _get(table, "auth", where, str, "password") == "none":
            raise ConfigError(f"{where}.auth", 'an IMAP mailbox logs in: "password" or "oauth2"')
        return MailboxConfig(
            address=address,
            backend=backend,
            host=_get(table, "host", where, str),
            port=_get(table, "port", where, int, 993 if security == "ssl" else 143),
            security=security,
            username=_get(table, "username", where, str),
            **_plaintext(table, where, security),
            **_credentials(table, where, base, _get(table, "auth", where, str, "password")),
            folder=_get(table, "folder", where, str, "INBOX"),
            move_to=_get(table, "move_to", where, str, None),
            poll_interval=_get(table, "poll_interval", where, float, 60.0),
            ca_file=_path(table, "ca_file", where, base),
            outgoing=sending,
        )
    raise ConfigError(f"{where}.backend", f"must be 'maildir' or 'imap', got {backend!r}")


def _mailbox_outgoing(
    table: dict[str, Any], where: str, base: Path, outgoing: OutgoingConfig, address: str
) -> OutgoingConfig:
    """`[mailboxes.outgoing]`: the SMTP login this mailbox's replies go out through, with the
    mailbox's address as envelope sender. Keys left out are `[outgoing]`'s, except the
    credentials: a password is this login's own (`password_env`), an OAuth2 login without an
    `oauth2` table of its own shares `[outgoing]`'s (one app, several mailboxes)."""
    if outgoing.backend != "smtp":
        raise ConfigError(where, 'is used with [outgoing] backend = "smtp"')
    security = _security(table, where, outgoing.security)
    host = _get(table, "host", where, str, outgoing.host)
    same_server = host == outgoing.host and security == outgoing.security
    default_port = outgoing.port if same_server else (465 if security == "ssl" else 587)
    auth = _get(table, "auth", where, str, outgoing.auth)
    plain = _plaintext(table, where, security, host or "", auth, outgoing.allow_plaintext)
    if auth == "password" and not {"password", "password_env", "password_file"} & set(table):
        raise ConfigError(
            f"{where}.password_env",
            'is required: this login\'s own password (or auth = "oauth2" or "none")',
        )
    return replace(
        outgoing,
        host=host,
        port=_get(table, "port", where, int, default_port),
        security=security,
        username=_get(table, "username", where, str, address),
        ca_file=_path(table, "ca_file", where, base) or outgoing.ca_file,
        envelope_from=address,
        name=f"mailboxes {address} outgoing",
        **plain,
        **{"password_problem": None, "oauth2": None}
        | _credentials(table, where, base, auth, shared=outgoing.oauth2),
    )


def _outgoing(table: dict[str, Any], base: Path) -> OutgoingConfig:
    where = "outgoing"
    backend = _get(table, "backend", where, str)
    _unused_keys(table, where, "maildir" if backend == "maildir" else backend)
    charset = _get(table, "charset", where, str, "utf-8").lower()
    if charset not in ("utf-8", "iso-2022-jp"):
        raise ConfigError("outgoing.charset", "must be 'utf-8' or 'iso-2022-jp'")
    common = {
        "charset": charset,
        "from_name": _get(table, "from_name", where, str, OutgoingConfig.from_name),
        "message_id_domain": _get(table, "message_id_domain", where, str, None),
        "timeout": _get(table, "timeout", where, float, 30.0),
    }
    if backend == "maildir":
        return OutgoingConfig(
            backend=backend, path=base / _get(table, "path", where, str), **common
        )
    if backend == "smtp":
        security = _security(table, where, "starttls")
        return OutgoingConfig(
            backend=backend,
            host=_get(table, "host", where, str),
            port=_get(table, "port", where, int, 465 if security == "ssl" else 587),
            security=security,
            username=_get(table, "username", where, str, None),
            **_plaintext(table, where, security),
            **_credentials(table, where, base, _get(table, "auth", where, str, "password")),
            ca_file=_path(table, "ca_file", where, base),
            **common,
        )
    raise ConfigError("outgoing.backend", f"must be 'maildir' or 'smtp', got {backend!r}")


def _web(table: dict[str, Any]) -> WebConfig:
    where = "web"
    proxies = _get(table, "trusted_proxies", where, list, [])
    header = _get(table, "trusted_user_header", where, str, None)
    if header and not proxies:
        raise ConfigError("web.trusted_proxies", "is required with web.trusted_user_header")
    for entry in proxies:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                "web.trusted_proxies", f"{entry!r} is not an IP address or network"
            ) from None
        if network.prefixlen == 0:
            raise ConfigError(
                "web.trusted_proxies",
                f"{entry!r} is every address: any client could name itself or a staff user",
            )
    base_url = _get(table, "base_url", where, str, None)
    if base_url is not None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ConfigError(
                "web.base_url",
                f"{base_url!r} is not an http(s) address such as https://desk.example/",
            )
        base_url = base_url.rstrip("/")
    for key in ("session_hours", "session_max_hours"):
        if _get(table, key, where, float, 0) > MAX_SESSION_HOURS:
            raise ConfigError(f"web.{key}", f"must be at most {MAX_SESSION_HOURS} (a year)")
    return WebConfig(
        host=_get(table, "host", where, str, WebConfig.host),
        port=_get(table, "port", where, int, WebConfig.port),
        secure_cookies=_get(table, "secure_cookies", where, bool, WebConfig.secure_cookies),
        session_hours=_get(table, "session_hours", where, float, WebConfig.session_hours),
        session_max_hours=_get(
            table, "session_max_hours", where, float, WebConfig.session_max_hours
        ),
        trusted_proxies=tuple(proxies),
        trusted_user_header=header,
        base_url=base_url,
        connections_per_client=_get(
            table, "connections_per_client", where, int, WebConfig.connections_per_client
        ),
    )


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError("monitoring.listen", f"must be HOST:PORT, got {text!r}")
    return host, int(port)


def _networks(entries: list[str], where: str) -> tuple[str, ...]:
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(where, f"{entry!r} is not an IP address or network") from None
    return tuple(entries)


def _metrics_token(table: dict[str, Any], base: Path) -> dict[str, str | None]:
    """The bearer token of /metrics, or why it cannot be read (told when /metrics is asked,
    so a missing secret never stops mail)."""
    where = "monitoring"
    if "metrics_token_env" in table and "metrics_token_file" in table:
        raise ConfigError(where, "metrics_token_env and metrics_token_file: give one")
    if "metrics_token_env" in table:
        name = _get(table, "metrics_token_env", where, str)
        value = os.environ.get(name, "").strip()
        if not value:
            return {"token_problem": f"metrics_token_env: environment variable {name} is not set"}
        return {"metrics_token": value}
    if "metrics_token_file" in table:
        path = base / _get(table, "metrics_token_file", where, str)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            return {"token_problem": f"metrics_token_file: {path}: {exc.strerror}"}
        if not value:
            return {"token_problem": f"metrics_token_file: {path} is empty"}
        return {"metrics_token": value}
    return {}


def _monitoring(table: dict[str, Any], base: Path) -> MonitoringConfig:
    where = "monitoring"
    listen = _get(table, "listen", where, str, None)
    return MonitoringConfig(
        listen=_listen(listen) if listen is not None else None,
        **_metrics_token(table, base),  # type: ignore[arg-type]
        trusted_networks=_networks(
            _get(table, "trusted_networks", where, list, list(LOOPBACK)),
            "monitoring.trusted_networks",
        ),
        mailbox_alert_minutes=_get(
            table, "mailbox_alert_minutes", where, float, MonitoringConfig.mailbox_alert_minutes
        ),
        reply_due_minutes=_get(
            table, "reply_due_minutes", where, float, MonitoringConfig.reply_due_minutes
        ),
    )


def parse_config(text: str, source: str, base: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from exc
    validate(data)
    storage = data.get("storage", {})
    boxes = data.get("mailboxes", [])
    if not isinstance(boxes, list) or not boxes:
        raise ConfigError("mailboxes", "at least one [[mailboxes]] entry is required")
    if "outgoing" not in data:
        raise ConfigError("outgoing", "an [outgoing] table is required")
    outgoing = _outgoing(data["outgoing"], base)
    mailboxes = tuple(_mailbox(box, i, base, outgoing) for i, box in enumerate(boxes))
    addresses = [box.address.lower() for box in mailboxes]
    if len(set(addresses)) != len(addresses):
        raise ConfigError("mailboxes", "two entries have the same address")
    staff = data.get("staff", {})
    limits = data.get("limits", {})
    paths = data.get("paths", {})
    return Config(
        database=base / _get(storage, "database", "storage", str, "data/mailbot.db"),
        mailboxes=mailboxes,
        outgoing=outgoing,
        staff_addresses=tuple(a.lower() for a in _get(staff, "addresses", "staff", list, [])),
        rules_dir=base / _get(paths, "rules", "paths", str, str(RULES_DIR)),
        templates_dir=base / _get(paths, "templates", "paths", str, str(TEMPLATES_DIR)),
        limits=Limits(
            max_message_bytes=_get(
                limits, "max_message_bytes", "limits", int, Limits.max_message_bytes
            ),
            max_attachment_bytes=_get(
                limits, "max_attachment_bytes", "limits", int, Limits.max_attachment_bytes
            ),
            auto_replies_per_sender_per_day=_get(
                limits,
                "auto_replies_per_sender_per_day",
                "limits",
                int,
                Limits.auto_replies_per_sender_per_day,
            ),
        ),
        source=source,
        web=_web(data.get("web", {})),
        authserv_ids=tuple(
            a.strip().lower().rstrip(".")
            for a in _get(data.get("trust", {}), "authserv_ids", "trust", list, [])
        ),
        monitoring=_monitoring(data.get("monitoring", {}), base),
    )


def load_config(path: str | None) -> Config:
    """`--config FILE`, else `config.toml` in the current directory, else the embedded default."""
    cwd = Path.cwd()
    if path is None and (cwd / "config.toml").is_file():
        path = "config.toml"
    if path is None:
        return parse_config(DEFAULT_CONFIG, "<embedded default>", cwd)
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), f"cannot read: {exc.strerror}") from exc
    return parse_config(text, str(file), file.resolve().parent)
