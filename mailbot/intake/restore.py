"""`mailbot restore`: a backup put back in place, and every mail the mailboxes gave the store
after the backup made waiting again.

The restored database holds the keys stored up to the backup; the mailboxes still mark as
stored every mail acked since. This makes each mail whose key the database lacks waiting
again, so the next `mailbot run` fetches, stores and processes it:
- Maildir: such a file in cur/ (acked: the S flag) goes back to new/, as the MTA left it;
- IMAP: such a message loses `$MailbotStored`. With the `\\Flagged` fallback (a server that
  takes no keywords), where people may flag mail themselves, only UIDs above the backup's
  high-water mark are touched. A folder whose UIDVALIDITY changed since the backup, and the
  `move_to` folder stored mail is moved to, cannot be matched by key: there marked mail is
  matched by content (SHA-256) against the store, and what it lacks is unmarked (and moved
  back into the folder).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbot.clock import Clock
from mailbot.config import Config, MailboxConfig
from mailbot.context import Context
from mailbot.errors import ConfigError, MailbotError, MailboxError
from mailbot.intake.mailboxes.maildir import ensure_maildir
from mailbot.outbox.send import record_sent
from mailbot.store import Store
from mailbot.store.restore import (
    BackupFile,
    Mark,
    SentBefore,
    adopt_sent,
    body_of,
    check_backup,
    database_alone,
    pending_replies,
    read_marks,
    replace_database,
    sent_replies,
    stored_keys,
    stored_shas,
)


@dataclass
class Refetched:
    mailbox: str
    waiting_again: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def _unique(name: str) -> str:
    return name.split(":2,", 1)[0]


def refetch_maildir(path: Path, keys: set[str]) -> int:
    """Moves back to new/ every acked file of the Maildir at `path` whose key
    (`maildir:<unique>`) is not in `keys`. Returns how many."""
    ensure_maildir(path)
    moved = 0
    for entry in sorted((path / "cur").iterdir()):
        flags = entry.name.split(":2,", 1)[1] if ":2," in entry.name else ""
        if entry.name.startswith(".") or "S" not in flags:
            continue
        unique = _unique(entry.name)
        if f"maildir:{unique}" in keys:
            continue
        try:
            os.replace(entry, path / "new" / unique)
        except FileNotFoundError:
            continue
        moved += 1
    return moved


LOOK_BACK = timedelta(days=7)
"""How far before the backup a mail matched by content (a renumbered folder, a `move_to`
folder) may have arrived and still be found: one stored only after the backup had arrived at
most this long before it."""


def _marked(client: Any, marker: str, since: date | None) -> list[int]:
    from mailbot.intake.mailboxes.imap import KEYWORD

    criteria: list[Any] = ["KEYWORD", KEYWORD] if marker == KEYWORD else ["FLAGGED"]
    return sorted(client.search(criteria + (["SINCE", since] if since else [])))


def _not_stored(client: Any, uids: list[int], shas: set[str]) -> list[int]:
    """Of `uids` in the selected folder, those whose bytes the store does not hold."""
    lost = []
    for start in range(0, len(uids), 50):
        chunk = uids[start : start + 50]
        for uid, item in client.fetch(chunk, ["BODY.PEEK[]"]).items():
            raw = item.get(b"BODY[]")
            if raw is not None and hashlib.sha256(raw).hexdigest() not in shas:
                lost.append(uid)
    return sorted(lost)


def refetch_imap(
    box: MailboxConfig, mark: Mark | None, keys: set[str], shas: set[str]
) -> Refetched:
    """Takes the stored marker off every message of the folder whose key is not in `keys`
    (see the module's docstring for the `\\Flagged` fallback). Where keys cannot tell (the
    server renumbered the folder since the backup; mail moved to `move_to`), marked mail that
    arrived from LOOK_BACK before the backup on is compared by content (`shas`, the SHA-256 of
    every stored mail) and what the store lacks is unmarked (and moved back to the folder).
    Raises MailboxError when the server cannot be reached or refuses."""
    from mailbot.intake.mailboxes.imap import KEYWORD, ImapMailbox

    result = Refetched(box.address)
    mailbox = ImapMailbox.from_config(box)
    taken = datetime.fromisoformat(mark.taken_at) if mark and mark.taken_at else None
    since = (taken - LOOK_BACK).date() if taken else None
    try:
        client = mailbox.client
        validity, marker = mailbox.uidvalidity, mailbox.marker
        if mark is not None and mark.uidvalidity not in (None, validity):
            lost = _not_stored(client, _marked(client, marker, since), shas)
            result.notes.append(
                f"UIDVALIDITY {mark.uidvalidity} → {validity}: matched by content"
                + (f" since {since}" if since else "")
            )
        else:
            high = mark.high_uid if mark is not None else 0
            lost = [
                uid
                for uid in _marked(client, marker, None)
                if f"imap:{validity}:{uid}" not in keys and (marker == KEYWORD or uid > high)
            ]
        for start in range(0, len(lost), 500):
            client.remove_flags(lost[start : start + 500], [marker], silent=True)
        result.waiting_again = len(lost)
        if box.move_to and client.folder_exists(box.move_to):
            client.select_folder(box.move_to)
            moved = _not_stored(client, _marked(client, marker, since), shas)
            if moved:
                client.remove_flags(moved, [marker], silent=True)
                client.copy(moved, box.folder)
                client.delete_messages(moved, silent=True)
                client.uid_expunge(moved)
            result.waiting_again += len(moved)
            result.notes.append(f"{len(moved)} moved back from {box.move_to}")
    except MailboxError:
        raise
    except Exception as exc:
        raise MailboxError(f"{box.address}: {type(exc).__name__}: {exc}") from exc
    finally:
        mailbox.close()
    return result


def refetch_all(
    mailboxes: tuple[MailboxConfig, ...],
    marks: dict[str, Mark],
    keys_of: dict[str, set[str]],
    shas: set[str],
) -> list[Refetched]:
    """Each configured mailbox, one result each; a mailbox that cannot be reached is an error
    on its row, and the others still go."""
    results = []
    for box in mailboxes:
        keys = keys_of.get(box.address, set())
        if box.backend == "maildir":
            assert box.path is not None
            results.append(Refetched(box.address, refetch_maildir(box.path, keys)))
            continue
        try:
            results.append(refetch_imap(box, marks.get(box.address), keys, shas))
        except (MailboxError, ConfigError) as exc:  # unreachable, or its password_env unset
            results.append(Refetched(box.address, error=str(exc)))
    return results


@dataclass
class Restored:
    backup: BackupFile | None
    replaced: Path | None
    """Where the database the backup replaced was kept (None: there was none)."""
    mailboxes: list[Refetched]
    processed: int = 0
    """Mails fetched and processed again by the restore itself."""
    adopted: int = 0
    """Replies recorded as sent, not sent again: the replaced database shows them sent after
    the backup, by Message-ID or as the same text to the same recipient."""
    unmatched: list[SentBefore] = field(default_factory=list)
    """Replies sent after the backup that no reply planned now repeats (a case number or the
    text differs): their recipients get the new one with the next `mailbot run`."""
    replaced_unreadable: bool = False


def _refetch(config: Config) -> list[Refetched]:
    """Under `database_alone`: the marks and keys of the database now in place, then every
    mailbox."""
    store = Store(config.database)  # a backup of an older schema is migrated here
    try:
        marks, _ = read_marks(store.conn)
        keys_of = {box.address: stored_keys(store.conn, box.address) for box in config.mailboxes}
        shas = stored_shas(store.conn)
    finally:
        store.close()
    return refetch_all(config.mailboxes, {m.mailbox: m for m in marks}, keys_of, shas)


def _fetch_and_process(ctx: Context, reached: set[str]) -> int:
    """What `run --once` does before it sends: each mailbox in `reached` fetched, every stored
    mail processed, the jobs due run (a reminder the replaced database sent is planned again
    here, so that `settle_sent_before` finds it). Returns how many mails were processed."""
    from mailbot.intake.runner import open_mailbox, process_pending, receive, run_jobs

    for box in ctx.config.mailboxes:
        if box.address not in reached:
            continue
        mailbox = open_mailbox(box)
        try:
            receive(ctx.store, mailbox, ctx.now)
        finally:
            mailbox.close()
    processed = len(process_pending(ctx))
    run_jobs(ctx)
    return processed


def settle_sent_before(ctx: Context, sent: list[SentBefore]) -> tuple[int, list[SentBefore]]:
    """Replies the replaced database sent after the backup are not sent twice: a pending row
    with the Message-ID of one (planned before the backup, sent after it), or planned anew
    with the same recipient, subject and text (the same mail answered the same way), is
    recorded as sent at the time it went, with the bytes and Message-ID that went (so the
    participant's answer finds its thread). Returns how many, and the sent replies no row
    matched. One synced transaction."""
    by_id = {s.message_id: s for s in sent}
    used: set[str] = set()
    adopted = 0
    with ctx.store.synced(), ctx.store.transaction():
        rows = pending_replies(ctx.store.conn)
        pending_ids = {row["message_id"] for row in rows}
        by_content: dict[tuple[str, str, bytes], SentBefore] = {}
        for s in sent:
            if s.message_id not in pending_ids:
                by_content.setdefault((s.recipient, s.subject, body_of(s.raw)), s)
        for row in rows:
            match = by_id.get(row["message_id"])
            if match is None:
                match = by_content.get((row["recipient"], row["subject"], body_of(row["raw"])))
                if match is None or match.message_id in used:
                    continue
                adopt_sent(ctx.store.conn, row["id"], match)
            used.add(match.message_id)
            record_sent(
                ctx,
                dict(row) | {"message_id": match.message_id},
                datetime.fromisoformat(match.sent_at),
            )
            adopted += 1
    return adopted, [s for s in sent if s.message_id not in used]


def restore_backup(config: Config, backup: Path, clock: Clock) -> Restored:
    """Checks `backup` (integrity, schema version), puts it in place of the configured
    database while no other mailbot process has it open, makes every mail stored after the
    backup waiting again in its mailbox, then fetches and processes those mails and runs the
    jobs due (as `run --once` would, without sending) and records as sent each reply the
    replaced database shows already sent (`settle_sent_before`), so `mailbot run` sends only
    what is new. A mailbox that cannot be reached is an error on its row: the database is
    restored all the same, and `restore_refetch` does the rest later.

    Raises MailbotError when the backup is unfit or the database is in use; OSError when the
    backup cannot be read."""
    checked = check_backup(backup)
    if backup.resolve() == config.database.resolve():
        raise MailbotError(f"{backup}: that is the database itself")
    with database_alone(config.database):
        replaced = replace_database(config.database, backup, clock.now().strftime("%Y%m%d-%H%M%S"))
        restored = Restored(checked, replaced, _refetch(config))
        return _finish(config, clock, restored, replaced, checked.marks)


def _finish(
    config: Config,
    clock: Clock,
    restored: Restored,
    replaced: Path | None,
    marks: tuple[Mark, ...],
) -> Restored:
    """Under `database_alone`, once the mailboxes are done: the mail fetched and processed,
    and the replies the replaced database shows sent recorded as sent."""
    taken = max((m.taken_at for m in marks), default="")
    sent = sent_replies(replaced, taken) if replaced is not None and taken else []
    restored.replaced_unreadable = sent is None
    with Context(config, Store(config.database), clock) as ctx:
        reached = {r.mailbox for r in restored.mailboxes if r.error is None}
        restored.processed = _fetch_and_process(ctx, reached)
        restored.adopted, restored.unmatched = settle_sent_before(ctx, sent or [])
    return restored


def restore_refetch(config: Config, clock: Clock) -> Restored:
    """The steps of a restore after the swap, again: for a mailbox that could not be reached
    then. The replaced database is the newest `<database>.replaced-*` beside it. Harmless at
    any time: a mail the database holds is never made waiting, a reply is recorded as sent
    only when that database shows it sent."""
    if not config.database.is_file():
        raise MailbotError(f"{config.database}: no database to compare the mailboxes with")
    with database_alone(config.database):
        store = Store(config.database)
        try:
            marks, recorded = read_marks(store.conn)
        finally:
            store.close()
        kept = sorted(config.database.parent.glob(f"{config.database.name}.replaced-*"))
        replaced = next((p for p in reversed(kept) if not p.name.endswith(("-wal", "-shm"))), None)
        restored = Restored(None, replaced, _refetch(config))
        return _finish(config, clock, restored, replaced, tuple(marks) if recorded else ())
