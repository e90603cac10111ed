"""`mailbot restore`: a backup put back in place, and every mail the mailboxes gave the store
after the backup made waiting again.

The restored database holds the keys stored up to the backup; the mailboxes still mark as
stored every mail acked since. This makes each mail whose key the database lacks waiting
again, so the next `mailbot run` fetches, stores and processes it:
- Maildir: such a file in cur/ (acked: the S flag) goes back to new/, as the MTA left it;
- IMAP: such a message loses `$MailbotStored`. With the `\\Flagged` fallback (a server that
  takes no keywords), where people may flag mail themselves, only UIDs above the backup's
  high-water mark are touched. A folder whose UIDVALIDITY changed since the backup, and mail
  a `move_to` folder holds, cannot be matched to keys; each is reported for staff instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mailbot.config import Config, MailboxConfig
from mailbot.errors import MailbotError, MailboxError
from mailbot.intake.mailboxes.maildir import ensure_maildir
from mailbot.store import Store
from mailbot.store.restore import (
    BackupFile,
    Mark,
    check_backup,
    database_alone,
    read_marks,
    replace_database,
    sent_after,
    stored_keys,
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


def refetch_imap(box: MailboxConfig, mark: Mark | None, keys: set[str]) -> Refetched:
    """Takes the stored marker off every message of the folder whose key is not in `keys`
    (see the module's docstring for the `\\Flagged` fallback). Raises MailboxError when the
    server cannot be reached or refuses."""
    from mailbot.intake.mailboxes.imap import KEYWORD, ImapMailbox

    result = Refetched(box.address)
    mailbox = ImapMailbox.from_config(box)
    try:
        client = mailbox.client
        validity = mailbox.uidvalidity
        if mark is not None and mark.uidvalidity not in (None, validity):
            result.notes.append(
                f"UIDVALIDITY of {box.folder} is {validity}, the backup's {mark.uidvalidity}:"
                " the server renumbered the folder; mail stored after the backup cannot be"
                " told from the rest (make it unread-by-mailbot by removing the"
                f" {mailbox.marker} flag from what arrived after {mark.taken_at})"
            )
            return result
        high = mark.high_uid if mark is not None else 0
        flagged = client.search(["KEYWORD", KEYWORD] if mailbox.marker == KEYWORD else ["FLAGGED"])
        lost = [
            uid
            for uid in sorted(flagged)
            if f"imap:{validity}:{uid}" not in keys and (mailbox.marker == KEYWORD or uid > high)
        ]
        for start in range(0, len(lost), 500):
            client.remove_flags(lost[start : start + 500], [mailbox.marker], silent=True)
        result.waiting_again = len(lost)
        if box.move_to:
            result.notes.append(
                f"stored mail is moved to {box.move_to}: the mail moved there after"
                f" {mark.taken_at if mark else 'the backup'} is not fetched again; move it"
                f" back to {box.folder} without the {mailbox.marker} flag"
            )
    except MailboxError:
        raise
    except Exception as exc:
        raise MailboxError(f"{box.address}: {type(exc).__name__}: {exc}") from exc
    finally:
        mailbox.close()
    return result


def refetch_all(
    mailboxes: tuple[MailboxConfig, ...], marks: dict[str, Mark], keys_of: dict[str, set[str]]
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
            results.append(refetch_imap(box, marks.get(box.address), keys))
        except MailboxError as exc:
            results.append(Refetched(box.address, error=str(exc)))
    return results


@dataclass
class Restored:
    backup: BackupFile | None
    replaced: Path | None
    """Where the database the backup replaced was kept (None: there was none)."""
    mailboxes: list[Refetched]
    sent_after: list[tuple[str, str, str]] | None = None
    """Replies the replaced database sent after the backup (sent_at, recipient, subject): the
    mails they answered are answered again. None when it could not be read (or none was)."""


def _refetch(config: Config) -> list[Refetched]:
    """Under `database_alone`: the marks and keys of the database now in place, then every
    mailbox."""
    store = Store(config.database)  # a backup of an older schema is migrated here
    try:
        marks, _ = read_marks(store.conn)
        keys_of = {box.address: stored_keys(store.conn, box.address) for box in config.mailboxes}
    finally:
        store.close()
    return refetch_all(config.mailboxes, {m.mailbox: m for m in marks}, keys_of)


def restore_backup(config: Config, backup: Path, stamp: str) -> Restored:
    """Checks `backup` (integrity, schema version), puts it in place of the configured
    database while no other mailbot process has it open, and makes every mail stored after
    the backup waiting again in its mailbox. A mailbox that cannot be reached is an error on
    its row: the database is restored all the same, and `restore_refetch` does the rest later.

    Raises MailbotError when the backup is unfit or the database is in use; OSError when the
    backup cannot be read."""
    checked = check_backup(backup)
    if backup.resolve() == config.database.resolve():
        raise MailbotError(f"{backup}: that is the database itself")
    with database_alone(config.database):
        replaced = replace_database(config.database, backup, stamp)
        taken = max((m.taken_at for m in checked.marks), default="")
        again = sent_after(replaced, taken) if replaced is not None and taken else None
        return Restored(checked, replaced, _refetch(config), again)


def restore_refetch(config: Config) -> Restored:
    """Only the second step of a restore, again: for a mailbox that could not be reached then.
    Harmless at any time (a mail the database holds is never made waiting)."""
    if not config.database.is_file():
        raise MailbotError(f"{config.database}: no database to compare the mailboxes with")
    with database_alone(config.database):
        return Restored(None, None, _refetch(config))
