"""Configuration: the TOML file of SPEC §9, or the embedded default.

The embedded default is what a fresh checkout runs on: Maildir in (`data/inbox/<name>/`),
Maildir out (`data/outbox/`), SQLite at `data/mailbot.db`. Relative paths are taken from the
directory the command runs in. This module never opens a mailbox or the database.
"""

from __future__ import annotations

import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field
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

[[mailboxes]]
address = "youryou_rikuase_long@occto.or.jp"
backend = "maildir"
path = "data/inbox/youryou_rikuase_long"

[outgoing]
backend = "maildir"
path = "data/outbox"

[staff]
addresses = ["capacity-desk@occto.or.jp"]
"""

SECURITY = ("ssl", "starttls", "none")

PACKAGE_DIR = Path(str(importlib.resources.files("mailbot")))
RULES_DIR = PACKAGE_DIR / "rules"
TEMPLATES_DIR = PACKAGE_DIR / "templates"


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
    from_name: str = "電力広域的運営推進機関 容量市場 受付窓口"
    message_id_domain: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 30 * 1024 * 1024
    max_attachment_bytes: int = 20 * 1024 * 1024
    auto_replies_per_sender_per_day: int = 20


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

    def mailbox_for(self, address: str) -> MailboxConfig | None:
        address = address.lower()
        for box in self.mailboxes:
            if box.address.lower() == address:
                return box
        return None

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(box.address.lower() for box in self.mailboxes)

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
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}", f"must be a {kind.__name__}, got {value!r}")
    return value


def _password(table: dict[str, Any], where: str) -> str | None:
    if "password_env" in table:
        name = _get(table, "password_env", where, str)
        if name not in os.environ:
            raise ConfigError(f"{where}.password_env", f"environment variable {name} is not set")
        return os.environ[name]
    return _get(table, "password", where, str, None)


def _security(table: dict[str, Any], where: str, default: str) -> str:
    value = _get(table, "security", where, str, default)
    if value not in SECURITY:
        raise ConfigError(f"{where}.security", f"must be one of {', '.join(SECURITY)}")
    return value


def _mailbox(table: dict[str, Any], index: int, base: Path) -> MailboxConfig:
    where = f"mailboxes[{index}]"
    address = _get(table, "address", where, str)
    if "@" not in address:
        raise ConfigError(f"{where}.address", f"not a mail address: {address!r}")
    backend = _get(table, "backend", where, str)
    if backend == "maildir":
        return MailboxConfig(
            address=address,
            backend=backend,
            path=base / _get(table, "path", where, str),
            poll_interval=_get(table, "poll_interval", where, float, 5.0),
        )
    if backend == "imap":
        security = _security(table, where, "ssl")
        return MailboxConfig(
            address=address,
            backend=backend,
            host=_get(table, "host", where, str),
            port=_get(table, "port", where, int, 993 if security == "ssl" else 143),
            security=security,
            username=_get(table, "username", where, str),
            password=_password(table, where),
            folder=_get(table, "folder", where, str, "INBOX"),
            move_to=_get(table, "move_to", where, str, None),
            poll_interval=_get(table, "poll_interval", where, float, 60.0),
        )
    raise ConfigError(f"{where}.backend", f"must be 'maildir' or 'imap', got {backend!r}")


def _outgoing(table: dict[str, Any], base: Path) -> OutgoingConfig:
    where = "outgoing"
    backend = _get(table, "backend", where, str)
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
            password=_password(table, where),
            **common,
        )
    raise ConfigError("outgoing.backend", f"must be 'maildir' or 'smtp', got {backend!r}")


def parse_config(text: str, source: str, base: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, f"not valid TOML: {exc}") from exc
    storage = data.get("storage", {})
    boxes = data.get("mailboxes", [])
    if not isinstance(boxes, list) or not boxes:
        raise ConfigError("mailboxes", "at least one [[mailboxes]] entry is required")
    if "outgoing" not in data:
        raise ConfigError("outgoing", "an [outgoing] table is required")
    mailboxes = tuple(_mailbox(box, i, base) for i, box in enumerate(boxes))
    addresses = [box.address.lower() for box in mailboxes]
    if len(set(addresses)) != len(addresses):
        raise ConfigError("mailboxes", "two entries have the same address")
    staff = data.get("staff", {})
    limits = data.get("limits", {})
    paths = data.get("paths", {})
    return Config(
        database=base / _get(storage, "database", "storage", str, "data/mailbot.db"),
        mailboxes=mailboxes,
        outgoing=_outgoing(data["outgoing"], base),
        staff_addresses=tuple(
            a.lower() for a in _get(staff, "addresses", "staff", list, []) if isinstance(a, str)
        ),
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
