"""Real servers for the tests: a private Dovecot (IMAP) and an aiosmtpd SMTP server, both on
127.0.0.1. Configuration per STACK-NOTES (measured on this machine kind)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from imapclient import IMAPClient

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
NOBODY = 65534
PASSWORD = "secret"
LONG = "youryou_rikuase_long@occto.or.jp"
STAFF = "capacity-desk@occto.or.jp"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
instance_name = dovecot-test-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login{mechanisms}
auth_failure_delay = 0
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = {uid}
first_valid_gid = {uid}
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {uid}
{capability}
{oauth2}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
  default_fields = home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
protocol imap {{
  mail_max_userip_connections = 100
}}
"""

OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/dovecot-oauth2.conf.ext
}}
"""
OAUTH2_CONF = """\
introspection_mode = auth
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
"""
"""Dovecot's oauth2 passdb: every token is asked of the test's introspection endpoint (GET
with the token as Bearer credentials: Debian's 2.3.19 aborts in `introspection_mode = post`
and expands no variables in the URL), which answers with the user the token is for."""

NO_IDLE = "imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE SORT UIDPLUS MOVE"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dovecot_available() -> bool:
    return DOVECOT.exists() and DOVEADM.exists()


class Dovecot:
    """One private Dovecot instance. Users are created up front, each with password `secret`."""

    def __init__(
        self,
        users: tuple[str, ...] = ("code", "youryou"),
        idle: bool = True,
        *,
        introspection_url: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """`introspection_url`: also take XOAUTH2/OAUTHBEARER tokens, checked there; `tls`:
        (certificate, key) files to serve IMAPS on `tls_port` (and STARTTLS on `port`)."""
        self.users = users
        self.idle = idle
        self.introspection_url = introspection_url
        self.tls = tls
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        # Unix socket paths must stay under 108 bytes: a short root, not a pytest tmp_path.
        self.root = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.conf = self.root / "dovecot.conf"
        self.process: subprocess.Popen | None = None
        (self.root / "mail").mkdir()
        (self.root / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n" for u in users), encoding="ascii"
        )
        os.chown(self.root / "mail", NOBODY, NOBODY)
        self._write_config()

    def _write_config(self) -> None:
        oauth2 = ""
        if self.introspection_url:
            oauth2 = OAUTH2_PASSDB.format(root=self.root)
            (self.root / "dovecot-oauth2.conf.ext").write_text(
                OAUTH2_CONF.format(url=self.introspection_url), encoding="ascii"
            )
        ssl = "ssl = no"
        if self.tls:
            ssl = f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
        self.conf.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                tls_port=self.tls_port,
                uid=NOBODY,
                capability="" if self.idle else NO_IDLE,
                ssl=ssl,
                mechanisms=" xoauth2 oauthbearer" if self.introspection_url else "",
                oauth2=oauth2,
            ),
            encoding="ascii",
        )

    def start(self) -> Dovecot:
        self.process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"dovecot exited: {err}\n{self.log()}") from None
                time.sleep(0.02)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Inject a mail the way the MTA's LDA would (no IMAP involved)."""
        subprocess.run(
            [str(DOVEADM), "-c", str(self.conf), "save", "-u", user, "-m", folder],
            input=raw,
            check=True,
            capture_output=True,
        )

    def client(self, user: str, folder: str = "INBOX") -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(user, PASSWORD)
        client.select_folder(folder)
        return client

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        client = self.client(user, folder)
        try:
            data = client.fetch(client.search(["ALL"]), ["FLAGS"])
            return {uid: tuple(item[b"FLAGS"]) for uid, item in data.items()}
        finally:
            client.logout()

    def count(self, user: str, folder: str = "INBOX") -> int:
        client = self.client(user, folder)
        try:
            return len(client.search(["ALL"]))
        finally:
            client.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Add a mail over IMAP APPEND, as a participant's client saving to a shared box would."""
        client = self.client(user, folder)
        try:
            client.append(folder, raw)
        finally:
            client.logout()

    def mailbox_config(self, user: str, address: str, **extra: object) -> str:
        """A [[mailboxes]] TOML entry pointing at this server; `extra` adds or replaces keys."""
        keys: dict[str, object] = {
            "address": address,
            "backend": "imap",
            "host": "127.0.0.1",
            "port": self.port,
            "security": "none",
            "username": user,
            "password": PASSWORD,
            "poll_interval": 1.0,
        } | extra
        lines = ["[[mailboxes]]"]
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in keys.items()]
        return "\n".join(lines) + "\n"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None = None


TokenCheck = Callable[[str, str], bool]
"""(login, bearer token) → whether the token lets that login in."""


def _sasl_fields(blob: bytes) -> tuple[str, str]:
    """(user, bearer token) of an XOAUTH2 or OAUTHBEARER initial response."""
    text = base64.b64decode(blob).decode("utf-8", "replace")
    user = token = ""
    for part in text.split("\x01"):
        if part.startswith("user="):
            user = part[5:]
        elif part.startswith("n,a="):
            user = part[4:].split(",", 1)[0].replace("=2C", ",").replace("=3D", "=")
        elif part.startswith("auth=Bearer "):
            token = part[12:]
    return user, token


@dataclass
class _Handler:
    messages: list[Received] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    check_token: TokenCheck | None = None
    refusals: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.failures:
                return self.failures.pop(0)
        login = session.auth_data
        login = getattr(login, "login", login)
        login = login.decode() if isinstance(login, bytes) else login
        with self.arrived:
            self.messages.append(
                Received(
                    envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), login
                )
            )
            self.arrived.notify_all()
        return "250 OK"

    async def _bearer(self, server: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2/OAUTHBEARER as Exchange Online and Gmail answer them: a refused token gets
        a 334 error challenge (base64 JSON), then 535 once the client has answered it."""
        blob = args[1].encode() if len(args) > 1 else await server.challenge_auth("")
        if not isinstance(blob, bytes):
            return AuthResult(success=False, handled=True)
        user, token = _sasl_fields(blob)
        if self.check_token is not None and self.check_token(user, token):
            return AuthResult(success=True, auth_data=user)
        self.refusals.append(user)
        await server.challenge_auth('{"status":"401","schemes":"bearer","scope":"mail"}')
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args)

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args)


class SmtpCapture:
    """aiosmtpd on 127.0.0.1 recording every message (and the login it came through);
    `fail_next` injects 4xx/5xx answers. `passwords` (PLAIN/LOGIN) and `check_token`
    (XOAUTH2/OAUTHBEARER) make it take logins; `ssl_context` serves implicit TLS."""

    def __init__(
        self,
        port: int | None = None,
        *,
        passwords: dict[str, str] | None = None,
        check_token: TokenCheck | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.handler = _Handler(check_token=check_token)
        self.port = port or free_port()
        options: dict[str, object] = {}
        if passwords is not None or check_token is not None:
            known = passwords or {}

            def authenticator(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
            ) -> AuthResult:
                ok = isinstance(data, LoginPassword) and known.get(data.login.decode()) == (
                    data.password.decode()
                )
                return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

            options = {"authenticator": authenticator, "auth_require_tls": False}
        if check_token is None:
            options["auth_exclude_mechanism"] = ["XOAUTH2", "OAUTHBEARER"]
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            ssl_context=ssl_context,
            **options,
        )
        self.running = False

    def start(self) -> SmtpCapture:
        self.controller.start()
        self.running = True
        return self

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()

    def fail_next(self, *replies: str) -> None:
        """e.g. fail_next("451 4.3.0 try later") or fail_next("550 5.1.1 no such user")."""
        with self.handler.lock:
            self.handler.failures.extend(replies)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.handler.arrived:
            while len(self.handler.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.handler.arrived.wait(left)
            return list(self.handler.messages)

    def outgoing_config(self) -> str:
        return (
            "[outgoing]\n"
            'backend = "smtp"\n'
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            'security = "none"\n'
            "timeout = 10\n"
        )


def write_desk_config(
    root: Path, dovecot: Dovecot, smtp: SmtpCapture, *, poll_interval: float = 1.0, extra: str = ""
) -> Path:
    """config.toml for a desk on these servers: code@ and youryou_rikuase_long@ as the Dovecot
    users code and youryou, replies to aiosmtpd, the staff address, the database under root."""
    path = root / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{root / "mailbot.db"}"\n\n'
        + dovecot.mailbox_config("code", "code@occto.or.jp", poll_interval=poll_interval)
        + "\n"
        + dovecot.mailbox_config("youryou", LONG, poll_interval=poll_interval)
        + "\n"
        + smtp.outgoing_config()
        + f'\n[staff]\naddresses = ["{STAFF}"]\n'
        + extra,
        encoding="utf-8",
    )
    return path


def user_for(raw: bytes) -> str:
    """The Dovecot user a mail is for, by its To header."""
    from email import message_from_bytes

    return "youryou" if LONG in (message_from_bytes(raw)["To"] or "") else "code"


class Blackhole:
    """A server that takes every connection and never says a word (a firewall that drops
    after the handshake, a hung server): a client waits for a greeting until its own timeout.
    `accepted` counts the connections taken."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.held.append(conn)

    @property
    def accepted(self) -> int:
        with self._lock:
            return len(self.held)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.accepted >= count:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.sock.close()
        with self._lock:
            for conn in self.held:
                conn.close()
