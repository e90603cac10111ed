"""IMAP backend on `imapclient`.

Which mails are waiting is kept on the server, not in a cursor of ours: a mail is waiting until
it carries the keyword `$MailbotStored` (or `\\Flagged` where the server allows no keywords),
which is set only after its bytes are committed to the store. So a crash, a UIDVALIDITY reset
or a restored mailbox costs at most a re-read, and the store's unique (mailbox, key) makes
that harmless. Bodies are fetched with BODY.PEEK[] so \\Seen stays what the humans left it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.config import MailboxConfig
from mailbot.errors import MailboxError
from mailbot.intake.mailboxes import RawMessage
from mailbot.mailauth import (
    TokenError,
    Tokens,
    certificate_problem,
    one_line,
    sasl_string,
    server_answer,
    tls_context,
    tokens_for,
)

log = logging.getLogger(__name__)

KEYWORD = "$MailbotStored"
FALLBACK_FLAG = "\\Flagged"
BATCH = 100
BATCH_BYTES = 16 * 1024 * 1024
PIECE_BYTES = 4 * 1024 * 1024
IDLE_MAX = 25 * 60
T = TypeVar("T")

RETRYABLE = (OSError, socket.timeout, ssl.SSLError, IMAPClientAbortError)


def _close(client: IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def _aware(value: object) -> datetime | None:
    """imapclient gives INTERNALDATE as a naive local datetime (its `normalise_times`)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.astimezone()


class ImapMailbox:
    @classmethod
    def from_config(cls, box: MailboxConfig, **overrides: Any) -> ImapMailbox:
        """The mailbox a `[[mailboxes]]` entry describes, for the run and for doctor alike."""
        box.require_password()
        settings: dict[str, Any] = {
            "address": box.address,
            "host": box.host or "localhost",
            "port": box.port or 993,
            "security": box.security,
            "username": box.username or "",
            "password": box.password or "",
            "folder": box.folder,
            "move_to": box.move_to,
            "poll_interval": box.poll_interval,
            "ca_file": box.ca_file,
        }
        if box.oauth2 is not None:
            settings["mechanism"] = box.oauth2.mechanism
            settings["tokens"] = tokens_for(box.oauth2, box.username or "")
        return cls(**(settings | overrides))

    def __init__(
        self,
        *,
        address: str,
        host: str,
        port: int,
        security: str,
        username: str,
        password: str,
        folder: str = "INBOX",
        move_to: str | None = None,
        poll_interval: float = 60.0,
        timeout: float = 30.0,
        max_backoff: float = 60.0,
        attempts: int = 6,
        stop: threading.Event | None = None,
        ca_file: Path | None = None,
        tokens: Tokens | None = None,
        mechanism: str = "xoauth2",
    ) -> None:
        """`tokens`: log in with an OAuth2 access token (SASL `mechanism`) instead of the
        password; `ca_file`: trust only this CA bundle for the server's certificate."""
        self.address = address
        self.ca_file = ca_file
        self.tokens, self.mechanism = tokens, mechanism
        self.host, self.port, self.security = host, port, security
        self.username, self._password = username, password
        self.folder, self.move_to = folder, move_to
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.attempts = attempts
        self.stop = stop
        self._connected_once = False
        self._client: IMAPClient | None = None
        self.uidvalidity = 0
        self.marker = KEYWORD
        self.can_idle = False
        self.can_move = False

    def __repr__(self) -> str:
        return f"ImapMailbox({self.username}@{self.host}:{self.port}/{self.folder})"

    @property
    def where(self) -> str:
        return f"imap {self.host}:{self.port}"

    def _open(self) -> IMAPClient:
        """The connection, TLS verified against `ca_file` (or the system's CAs). A certificate
        the client does not trust is a MailboxError at once, in one line: retrying cannot
        fix it."""
        context = tls_context(self.ca_file) if self.security != "none" else None
        try:
            client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "ssl",
                ssl_context=context,
                timeout=self.timeout,
                use_uid=True,
            )
            if self.security == "starttls":
                try:
                    client.starttls(context)
                except BaseException:
                    client.shutdown()
                    raise
        except OSError as exc:
            problem = certificate_problem(exc, self.where)
            if problem:
                raise MailboxError(f"mailbox {self.address}: {problem}") from exc
            raise
        return client

    def _oauth_login(self, client: IMAPClient) -> IMAPClient:
        """AUTHENTICATE with the cached token; when the server refuses it, once more with a
        renewed one (`Tokens.renew`) on a new connection (a server may drop one after a
        failed AUTHENTICATE). Returns the logged-in client; raises MailboxError in one line
        with the server's answer (its final NO and its error challenge). Whatever it
        raises, it has closed the connection."""
        assert self.tokens is not None
        answer = ""
        try:
            for attempt in (1, 2):
                try:
                    token = self.tokens.get() if attempt == 1 else self.tokens.renew()
                except TokenError as exc:
                    raise MailboxError(
                        f"mailbox {self.address}: no OAuth2 token for {self.username}: {exc}"
                    ) from exc
                if token is None:
                    break
                if attempt == 2:
                    _close(client)
                    client = self._open()
                said: list[bytes] = []
                try:
                    client.sasl_login(self.mechanism.upper(), self._responder(token, said))
                    return client
                except LoginError as exc:
                    challenge = next((c for c in said[1:] if c), b"")
                    final = one_line(str(exc))
                    answer = f"{final} ({server_answer(challenge)})" if challenge else final
            raise MailboxError(
                f"mailbox {self.address}: {self.where} refused the OAuth2 token for"
                f" {self.username} ({self.mechanism.upper()}): {answer}"
            )
        except BaseException:
            _close(client)
            raise

    def _responder(self, token: str, said: list[bytes]) -> Callable[[bytes], bytes]:
        """The SASL exchange: the initial response to the server's empty challenge; to an
        error challenge (base64 JSON, kept in `said`) the answer that ends the exchange."""

        def respond(challenge: bytes) -> bytes:
            if said or challenge:
                said.append(challenge)
                return b"\x01" if self.mechanism == "oauthbearer" else b""
            said.append(b"")
            return sasl_string(self.mechanism, self.username, token, self.host, self.port)

        return respond

    def _connect(self) -> IMAPClient:
        client = self._open()
        try:
            if self.tokens is None:
                client.login(self.username, self._password)
            else:
                client = self._oauth_login(client)
            selected = client.select_folder(self.folder)
        except LoginError as exc:
            _close(client)
            raise MailboxError(f"{self!r}: login refused: {exc}") from exc
        except IMAPClientError as exc:
            _close(client)
            raise MailboxError(f"{self!r}: cannot open the folder: {exc}") from exc
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        permanent = [bytes(f) for f in selected.get(b"PERMANENTFLAGS", ())]
        self.marker = KEYWORD if b"\\*" in permanent else FALLBACK_FLAG
        capabilities = client.capabilities()
        self.can_idle = b"IDLE" in capabilities
        self.can_move = b"MOVE" in capabilities
        return client

    @property
    def client(self) -> IMAPClient:
        """The session, opened when needed. A first connection that fails is not retried
        here (`_retry` is for a session that broke): the caller's own backoff (the watcher's,
        capped, logged once) decides when to try again."""
        if self._client is None:
            if not self._connected_once:
                try:
                    self._client = self._connect()
                except RETRYABLE as exc:
                    raise MailboxError(f"{self!r}: cannot connect: {exc}") from exc
            else:
                self._client = self._connect()
            self._connected_once = True
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.shutdown()
            self._client = None

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """Run `call`, reconnecting with exponential backoff (1 s doubling to `max_backoff`,
        with jitter) when the connection breaks. A refusal (NO/BAD, a refused login) is not a
        broken connection and is raised at once."""
        delay = 1.0
        for attempt in range(1, self.attempts + 1):
            try:
                return call()
            except MailboxError:
                raise
            except RETRYABLE as exc:
                self._drop()
                if attempt == self.attempts:
                    raise MailboxError(f"{self!r}: {what} failed {attempt} times: {exc}") from exc
                log.info("%r: %s failed (%s); reconnecting in %.1f s", self, what, exc, delay)
                if self._pause(delay * random.uniform(0.8, 1.2)):
                    raise MailboxError(f"{self!r}: {what}: stopped while reconnecting") from exc
                delay = min(delay * 2, self.max_backoff)
            except IMAPClientError as exc:
                self._drop()
                raise MailboxError(f"{self!r}: {what}: the server said {exc}") from exc
        raise AssertionError("unreachable")

    def _pause(self, seconds: float) -> bool:
        """Sleep between tries, cut short by `stop` (SIGTERM must not wait out a backoff).
        True when stopped."""
        if self.stop is None:
            time.sleep(seconds)
            return False
        return self.stop.wait(seconds)

    def _waiting_uids(self) -> list[int]:
        self.client.noop()
        return sorted(
            self.client.search(["UNKEYWORD", self.marker])
            if self.marker == KEYWORD
            else self.client.search(["UNFLAGGED"])
        )

    def probe(self) -> str:
        """For `mailbot doctor`: log in, select the folder, count what waits."""
        uids = self._retry("search", self._waiting_uids)
        return f"{self.folder}: {len(uids)} waiting, {'IDLE' if self.can_idle else 'polling'}"

    def fetch(self, limit: int | None = None) -> Iterator[RawMessage]:
        uids = self._retry("search", self._waiting_uids)
        if limit is not None:
            uids = uids[:limit]
        for chunk, total, arrived in self._chunks(uids):
            if len(chunk) == 1 and total > PIECE_BYTES:
                raw = self._retry(
                    "fetch", lambda uid=chunk[0], size=total: self._fetch_in_pieces(uid, size)
                )
                if raw is not None:
                    yield RawMessage(
                        key=f"imap:{self.uidvalidity}:{chunk[0]}",
                        data=raw,
                        arrived_at=arrived.get(chunk[0]),
                    )
                continue
            data: dict[int, dict[bytes, Any]] = self._retry(
                "fetch", lambda chunk=chunk: self.client.fetch(chunk, ["BODY.PEEK[]"])
            )
            for uid in chunk:
                item = data.get(uid)
                if item is None:
                    continue
                raw = item.get(b"BODY[]")
                if raw is None:
                    continue
                yield RawMessage(
                    key=f"imap:{self.uidvalidity}:{uid}", data=raw, arrived_at=arrived.get(uid)
                )

    def _fetch_in_pieces(self, uid: int, size: int) -> bytes | None:
        """A large mail in partial fetches: imaplib and imapclient hold a literal about three
        times over while parsing it, so a 28 MB mail fetched whole peaked near 100 MB."""
        pieces = []
        for offset in range(0, size, PIECE_BYTES):
            item = self.client.fetch([uid], [f"BODY.PEEK[]<{offset}.{PIECE_BYTES}>"]).get(uid, {})
            piece = next((v for k, v in item.items() if k.startswith(b"BODY[]")), None)
            if piece is None:
                return None if offset == 0 else b"".join(pieces)
            pieces.append(piece)
            if len(piece) < PIECE_BYTES:
                break
        return b"".join(pieces)

    def _chunks(
        self, uids: list[int]
    ) -> Iterator[tuple[list[int], int, dict[int, datetime | None]]]:
        """Batches of at most BATCH messages and BATCH_BYTES (by RFC822.SIZE), with their total
        size, so a run of large mails is fetched a few at a time; a larger mail comes alone.
        Each comes with its INTERNALDATE: when the server took it, what deadlines count from."""
        for start in range(0, len(uids), BATCH):
            group = uids[start : start + BATCH]
            sizes: dict[int, dict[bytes, Any]] = self._retry(
                "size",
                lambda group=group: self.client.fetch(group, ["RFC822.SIZE", "INTERNALDATE"]),
            )
            arrived = {uid: _aware(sizes.get(uid, {}).get(b"INTERNALDATE")) for uid in group}
            chunk: list[int] = []
            total = 0
            for uid in group:
                size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if chunk and total + size > BATCH_BYTES:
                    yield chunk, total, arrived
                    chunk, total = [], 0
                chunk.append(uid)
                total += size
            if chunk:
                yield chunk, total, arrived

    def _uids_for(self, keys: list[str]) -> list[int]:
        uids = []
        for key in keys:
            _, validity, uid = key.split(":", 2)
            if int(validity) == self.uidvalidity:
                uids.append(int(uid))
        return uids

    def ack(self, keys: list[str]) -> None:
        if not keys:
            return

        def mark() -> None:
            uids = self._uids_for(keys)
            if not uids:
                return
            self.client.add_flags(uids, [self.marker], silent=True)
            if self.move_to:
                self._move(uids)

        self._retry("ack", mark)

    def _move(self, uids: list[int]) -> None:
        client = self.client
        if not client.folder_exists(self.move_to):
            client.create_folder(self.move_to)
        if self.can_move:
            client.move(uids, self.move_to)
        else:
            client.copy(uids, self.move_to)
            client.delete_messages(uids, silent=True)
            client.uid_expunge(uids)

    @property
    def pushes(self) -> bool:
        return self.can_idle

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        if not self.can_idle:
            self._retry("poll", lambda: self.client)
            if stop is not None:
                return not stop.wait(min(timeout, self.poll_interval))
            self._pause(min(timeout, self.poll_interval))
            return True

        def idle() -> bool:
            client = self.client
            deadline = time.monotonic() + min(timeout, IDLE_MAX)
            client.idle()
            try:
                while (left := deadline - time.monotonic()) > 0:
                    if stop is not None and stop.is_set():
                        return False
                    for response in client.idle_check(timeout=min(left, 1.0)):
                        if len(response) > 1 and response[1] in (b"EXISTS", b"RECENT"):
                            return True
                return False
            finally:
                client.idle_done()

        return self._retry("idle", idle)

    def close(self) -> None:
        if self._client is None:
            return
        try:
            self._client.logout()
        except Exception:
            self._drop()
        self._client = None
