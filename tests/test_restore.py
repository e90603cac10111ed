"""`mailbot restore` loses no mail (issue 24: 「`mailbot backup` then a restore loses every mail
stored after the backup, silently (the server already flagged them `$MailbotStored`…)」), on a
Maildir desk and on a real Dovecot; and it never swaps the database under a running process,
nor puts back a file that is not a whole, known database."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from email import message_from_bytes
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.clock import Clock
from mailbot.config import load_config
from mailbot.context import Context
from mailbot.intake.mailboxes.imap import KEYWORD
from tests.support.desk import SOURCES_CSV, body_text
from tests.support.jpmail import build
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import (
    DOVEADM,
    STAFF,
    Dovecot,
    SmtpCapture,
    user_for,
    write_desk_config,
)


def question(n: int, to: str = "code@occto.or.jp") -> bytes:
    return build(
        "お問い合わせ",
        f"問い合わせ {n} です。",
        from_addr=f"sender{n}@example.co.jp",
        from_name=f"差出人{n}",
        to=to,
        message_id=f"<restore.{n}@example.co.jp>",
    )


def stored(database: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(database) as conn:
        return set(conn.execute("SELECT mailbox, key FROM messages").fetchall())


def message_ids(database: Path) -> list[str]:
    with sqlite3.connect(database) as conn:
        return sorted(r[0] for r in conn.execute("SELECT message_id FROM messages").fetchall())


@pytest.fixture
def maildir_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    return tmp_path


def deliver(root: Path, *mails: bytes) -> None:
    for raw in mails:
        path = root / "in.eml"
        path.write_bytes(raw)
        assert main(["deliver", str(path)]) == 0


def test_restore_on_maildir_fetches_every_mail_stored_after_the_backup(maildir_desk: Path, capsys):
    root = maildir_desk
    database = root / "data" / "mailbot.db"
    deliver(root, question(1), question(2, "youryou_rikuase_long@occto.or.jp"))
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 0
    assert main(["--now", "2026-11-25T10:05", "backup", "backup.db"]) == 0
    deliver(root, question(3), question(4, "youryou_rikuase_long@occto.or.jp"), question(5))
    assert main(["--now", "2026-11-25T10:10", "run", "--once"]) == 0
    before = stored(database)
    assert len(before) == 5
    capsys.readouterr()

    replies = sorted(p.name for p in (root / "data" / "outbox" / "new").iterdir())

    assert main(["--now", "2026-11-25T10:20", "restore", "backup.db"]) == 0
    out = capsys.readouterr().out
    assert "code@occto.or.jp\t2\t" in out and "youryou_rikuase_long@occto.or.jp\t1\t" in out
    assert "3 mail(s) processed again; 3 repl(ies) that went out after the backup" in out
    assert Path(f"{database}.replaced-20261125-102000").is_file()  # never deleted
    assert stored(database) == before  # every mail again, under its own key
    assert message_ids(database) == [f"<restore.{n}@example.co.jp>" for n in range(1, 6)]
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM cases").fetchone()[0] == 5
        assert conn.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone() == (0,)

    assert main(["--now", "2026-11-25T10:30", "run", "--once"]) == 0
    assert sorted(p.name for p in (root / "data" / "outbox" / "new").iterdir()) == replies
    assert stored(database) == before
    capsys.readouterr()
    assert main(["restore", "--refetch"]) == 0  # nothing more to fetch: harmless again
    assert "code@occto.or.jp\t0\t" in capsys.readouterr().out


def test_restore_on_dovecot_unflags_the_uids_stored_after_the_backup(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys
):
    config = str(write_desk_config(tmp_path, dovecot, smtp_server))
    database = tmp_path / "mailbot.db"
    cli = ["--config", config]
    for n in (1, 2):
        dovecot.append(user_for(question(n)), question(n))
    assert main([*cli, "--now", "2026-11-25T10:00", "run", "--once"]) == 0
    backup = tmp_path / "backup.db"
    assert main([*cli, "--now", "2026-11-25T10:05", "backup", str(backup)]) == 0
    with sqlite3.connect(backup) as conn:
        [(validity, high, count)] = conn.execute(
            "SELECT uidvalidity, high_uid, stored FROM backup_marks"
            " WHERE mailbox = 'code@occto.or.jp'"
        ).fetchall()
    assert (high, count) == (2, 2) and validity
    for n in (3, 4, 5):
        dovecot.append("code", question(n))
    assert main([*cli, "--now", "2026-11-25T10:10", "run", "--once"]) == 0
    before = stored(database)
    assert len(before) == 5
    assert all(KEYWORD.encode() in flags for flags in dovecot.flags("code").values())
    answered = [m for m in smtp_server.messages if STAFF not in m.rcpt_tos]
    assert len(answered) == 5
    capsys.readouterr()

    assert main([*cli, "--now", "2026-11-25T10:20", "restore", str(backup)]) == 0
    out = capsys.readouterr().out
    assert "code@occto.or.jp\t3\t" in out  # UIDs 3–5 unflagged, then fetched again
    assert "3 mail(s) processed again; 3 repl(ies) that went out after the backup" in out
    assert stored(database) == before
    assert message_ids(database) == [f"<restore.{n}@example.co.jp>" for n in range(1, 6)]
    assert all(KEYWORD.encode() in f for f in dovecot.flags("code").values())

    assert main([*cli, "--now", "2026-11-25T10:30", "run", "--once"]) == 0
    assert [m for m in smtp_server.messages if STAFF not in m.rcpt_tos] == answered  # none twice
    with sqlite3.connect(database) as conn:
        threads = {r[0] for r in conn.execute("SELECT message_id FROM outbox").fetchall()}
    # the replies on record are the very mails that went, so an answer to one finds its thread
    assert {message_from_bytes(m.data)["Message-ID"] for m in answered} <= threads


def test_restore_refuses_while_a_process_has_the_database_open(maildir_desk: Path, capsys):
    root = maildir_desk
    deliver(root, question(1))
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 0
    assert main(["--now", "2026-11-25T10:05", "backup", "backup.db"]) == 0
    deliver(root, question(2))
    assert main(["--now", "2026-11-25T10:10", "run", "--once"]) == 0
    before = stored(root / "data" / "mailbot.db")
    capsys.readouterr()
    with Context.open(load_config(None), Clock.from_option("2026-11-25T10:15")):
        assert main(["restore", "backup.db"]) == 5
        assert "a mailbot process has the database open" in capsys.readouterr().err
    assert stored(root / "data" / "mailbot.db") == before
    assert not list((root / "data").glob("mailbot.db.replaced-*"))


def test_restore_refuses_a_damaged_or_foreign_or_newer_file(maildir_desk: Path, capsys):
    root = maildir_desk
    deliver(root, question(1))
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 0
    assert main(["--now", "2026-11-25T10:05", "backup", "backup.db"]) == 0
    database = root / "data" / "mailbot.db"
    before = database.read_bytes()

    damaged = root / "damaged.db"
    data = bytearray((root / "backup.db").read_bytes())
    data[4096 * 2 : 4096 * 2 + 512] = b"\xff" * 512  # a page of the tables broken
    damaged.write_bytes(bytes(data))
    newer = root / "newer.db"
    shutil.copyfile(root / "backup.db", newer)
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 9999")
    foreign = root / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA user_version = 3")
    text = root / "notes.txt"
    text.write_text("not a database\n" * 100, encoding="utf-8")
    capsys.readouterr()
    for path, why in (
        (damaged, ""),
        (newer, "schema version 9999; this mailbot runs versions 1 to"),
        (foreign, "not a mailbot database"),
        (text, "not"),
    ):
        assert main(["restore", str(path)]) == 5, path
        err = capsys.readouterr().err
        assert err.startswith(f"mailbot: {path}: ") and why in err, err
    assert main(["restore", str(root / "missing.db")]) == 4
    assert main(["restore"]) == 2
    assert database.read_bytes() == before


def _server_desk(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture, **box: object) -> list[str]:
    """A desk whose code@ mailbox has `box` settings (e.g. move_to); youryou as usual."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{tmp_path / "mailbot.db"}"\n\n'
        + dovecot.mailbox_config("code", "code@occto.or.jp", **box)
        + "\n"
        + dovecot.mailbox_config("youryou", "youryou_rikuase_long@occto.or.jp")
        + "\n"
        + smtp.outgoing_config()
        + f'\n[staff]\naddresses = ["{STAFF}"]\n',
        encoding="utf-8",
    )
    return ["--config", str(path)]


def dovecot_admin(dovecot: Dovecot) -> list[str]:
    return [str(DOVEADM), "-c", str(dovecot.conf)]


def _backup_then_more(cli: list[str], dovecot: Dovecot, tmp_path: Path) -> Path:
    for n in (1, 2):
        dovecot.append("code", question(n))
    assert main([*cli, "--now", "2026-11-25T10:00", "run", "--once"]) == 0
    backup = tmp_path / "backup.db"
    assert main([*cli, "--now", "2026-11-25T10:05", "backup", str(backup)]) == 0
    for n in (3, 4):
        dovecot.append("code", question(n))
    assert main([*cli, "--now", "2026-11-25T10:10", "run", "--once"]) == 0
    return backup


def test_restore_moves_back_what_move_to_took_after_the_backup(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys
):
    """With `move_to`, stored mail leaves the folder: its UIDs there are no key of ours, so
    the mail the restored store lacks is found by content and moved back."""
    cli = _server_desk(tmp_path, dovecot, smtp_server, move_to="Processed")
    backup = _backup_then_more(cli, dovecot, tmp_path)
    database = tmp_path / "mailbot.db"
    before = message_ids(database)
    assert dovecot.count("code") == 0 and dovecot.count("code", "Processed") == 4
    capsys.readouterr()

    assert main([*cli, "--now", "2026-11-25T10:20", "restore", str(backup)]) == 0
    out = capsys.readouterr().out
    assert "code@occto.or.jp\t2\t2 moved back from Processed" in out
    assert message_ids(database) == before  # moved back, fetched, stored, moved again
    assert dovecot.count("code") == 0 and dovecot.count("code", "Processed") == 4


def test_restore_matches_by_content_when_the_server_renumbered_the_folder(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys
):
    cli = _server_desk(tmp_path, dovecot, smtp_server)
    backup = _backup_then_more(cli, dovecot, tmp_path)
    database = tmp_path / "mailbot.db"
    before = message_ids(database)
    subprocess.run(
        [
            *dovecot_admin(dovecot),
            "mailbox",
            "update",
            "-u",
            "code",
            "--uid-validity",
            "4242",
            "INBOX",
        ],
        check=True,
        capture_output=True,
    )
    capsys.readouterr()

    assert main([*cli, "--now", "2026-11-25T10:20", "restore", str(backup)]) == 0
    out = capsys.readouterr().out
    assert "code@occto.or.jp\t2\t" in out and "→ 4242: matched by content" in out
    # 3 and 4 come back under the new UIDVALIDITY's keys; 1 and 2 keep their stored ones
    assert message_ids(database) == before
    assert sorted(k for _, k in stored(database) if k.startswith("imap:4242:")) == [
        "imap:4242:3",
        "imap:4242:4",
    ]


def test_a_mailbox_unreachable_during_the_restore_is_finished_by_refetch(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys
):
    cli = _server_desk(tmp_path, dovecot, smtp_server)
    backup = _backup_then_more(cli, dovecot, tmp_path)
    database = tmp_path / "mailbot.db"
    before = message_ids(database)
    dovecot.stop()
    capsys.readouterr()

    assert main([*cli, "--now", "2026-11-25T10:20", "restore", str(backup)]) == 1
    out = capsys.readouterr().out
    assert "restored from" in out and "run `mailbot restore --refetch` once" in out
    assert len(stored(database)) == 2  # the database is restored all the same

    dovecot.start()
    answered = [m for m in smtp_server.messages if STAFF not in m.rcpt_tos]
    assert main([*cli, "--now", "2026-11-25T10:25", "restore", "--refetch"]) == 0
    out = capsys.readouterr().out
    assert "code@occto.or.jp\t2\t" in out and "2 repl(ies) that went out after" in out
    assert message_ids(database) == before
    assert main([*cli, "--now", "2026-11-25T10:30", "run", "--once"]) == 0
    assert [m for m in smtp_server.messages if STAFF not in m.rcpt_tos] == answered


def test_a_notice_planned_before_the_backup_and_sent_after_it_is_not_sent_again(
    maildir_desk: Path, capsys
):
    """The restored outbox still holds it as due; the replaced database shows the same
    Message-ID sent: recorded as sent at that time, never mailed twice."""
    root = maildir_desk
    assert main(["operators", "import", str(SAMPLES_DIR / "operators.csv")]) == 0
    deliver(root, (SAMPLES_DIR / "01_operator_code_complete.eml").read_bytes())
    assert main(["--now", "2026-11-25T17:50", "run", "--once"]) == 0
    assert main(["--now", "2026-11-25T18:00", "decide", "MB-000001", "issue-code"]) == 0
    assert main(["--now", "2026-11-25T18:05", "backup", "backup.db"]) == 0
    assert main(["--now", "2026-11-26T09:00", "run", "--once"]) == 0  # the code notice goes
    outbox = root / "data" / "outbox" / "new"
    replies = participant_mail(outbox)
    capsys.readouterr()

    assert main(["--now", "2026-11-26T10:00", "restore", "backup.db"]) == 0
    out = capsys.readouterr().out
    assert "0 mail(s) processed again; 1 repl(ies) that went out after the backup" in out
    assert main(["--now", "2026-11-26T10:05", "run", "--once"]) == 0
    # The morning report to staff (an attachment: never the same bytes) goes again.
    assert participant_mail(outbox) == replies
    capsys.readouterr()
    assert main(["case", "MB-000001", "--json"]) == 0
    case = json.loads(capsys.readouterr().out)
    [notice] = [r for r in case["outbox"] if r["kind"] == "code_notice"]
    assert notice["state"] == "sent" and notice["sent_at"].startswith("2026-11-26T09:00")


def test_a_reply_that_would_differ_goes_again_and_staff_are_told(maildir_desk: Path, capsys):
    """A case created after the backup by staff (an inquiry) is gone with the restore, so the
    mail after it gets another case number: its reply is not the one that went, and goes."""
    root = maildir_desk
    deliver(root, question(1))
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 0
    assert main(["--now", "2026-11-25T10:05", "backup", "backup.db"]) == 0
    (root / "sources.csv").write_text(SOURCES_CSV, encoding="utf-8-sig")
    assert main(["--now", "2026-11-25T10:06", "sources", "import", "sources.csv"]) == 0
    assert (
        main(
            ["--now", "2026-11-25T10:07", "inquiry", "mismatch", "L0000000002", "--text", "不一致"]
        )
        == 0
    )
    deliver(root, question(2))
    assert main(["--now", "2026-11-25T10:10", "run", "--once"]) == 0
    outbox = root / "data" / "outbox" / "new"
    sent = len(list(outbox.iterdir()))
    capsys.readouterr()

    assert main(["--now", "2026-11-25T10:20", "restore", "backup.db"]) == 0
    out = capsys.readouterr().out
    assert "1 mail(s) processed again; 0 repl(ies) that went out" in out
    assert "2 repl(ies) sent after the backup are not repeated as they were" in out
    assert "sender2@example.co.jp  【ご案内】" in out  # it was told MB-000003
    assert "hanako@tohoku-green.jp" in out  # the inquiry, gone with its case
    assert main(["--now", "2026-11-25T10:30", "run", "--once"]) == 0
    [again] = _newest(outbox, sent)
    assert "sender2@example.co.jp" in message_from_bytes(again.read_bytes())["To"]
    assert "MB-000002" in body_text(again.read_bytes())  # the number that stands now


def participant_mail(outbox: Path) -> list[str]:
    return sorted(p.name for p in outbox.iterdir() if STAFF.encode() not in p.read_bytes())


def _newest(folder: Path, known: int) -> list[Path]:
    paths = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return paths[known:]
