"""The whole path for real: mails in a private Dovecot (two mailboxes), `mailbot` from the CLI
and as a long-running process, replies captured by aiosmtpd, state in a real SQLite file."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

from mailbot.cli import main
from mailbot.intake.mailboxes.imap import KEYWORD
from tests.support.desk import body_text
from tests.support.jpmail import build
from tests.support.samples import SAMPLES_DIR, samples
from tests.support.servers import STAFF, Dovecot, SmtpCapture, user_for, write_desk_config

ROOT = Path(__file__).resolve().parent.parent


def db(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "mailbot.db")
    conn.row_factory = sqlite3.Row
    return conn


def participant_mail(smtp: SmtpCapture) -> list:
    return [m for m in smtp.messages if STAFF not in m.rcpt_tos]


def test_run_once_over_imap_and_smtp_answers_every_sample_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture
):
    config = str(write_desk_config(tmp_path, dovecot, smtp_server))
    now = "2026-11-25T13:30:00+09:00"
    assert (
        main(
            [
                "--config",
                config,
                "--now",
                now,
                "operators",
                "import",
                str(SAMPLES_DIR / "operators.csv"),
            ]
        )
        == 0
    )
    sent_ids = {}
    for sample in samples():
        dovecot.append(user_for(sample.raw), sample.raw)
        sent_ids[message_from_bytes(sample.raw)["Message-ID"]] = sample
    assert main(["--config", config, "--now", now, "run", "--once"]) == 0

    cases = db(tmp_path).execute("SELECT count(DISTINCT case_id) FROM messages").fetchone()[0]
    assert db(tmp_path).execute("SELECT count(*) FROM messages").fetchone()[0] == len(sent_ids)
    assert cases == len(sent_ids) - 1  # the resubmission joins its application's case

    replies = participant_mail(smtp_server)
    expected = sum(len(s.replies) for s in sent_ids.values())
    assert len(replies) == expected
    ids = [message_from_bytes(m.data)["Message-ID"] for m in replies]
    assert len(set(ids)) == len(ids)
    for received in replies:
        reply = message_from_bytes(received.data)
        original = sent_ids[reply["In-Reply-To"]]
        assert reply["In-Reply-To"] in reply["References"]
        assert received.rcpt_tos == [message_from_bytes(original.raw)["From"].split("<")[1][:-1]]
        assert str(make_header(decode_header(reply["Subject"]))).startswith("【")
        assert "電力広域的運営推進機関" in body_text(received.data)
    staff = [m for m in smtp_server.messages if STAFF in m.rcpt_tos]
    assert len(staff) == 1  # the daily report; nothing is due soon, so no digest

    for user in ("code", "youryou"):
        flags = dovecot.flags(user)
        assert flags and all(KEYWORD.encode() in f for f in flags.values())

    assert main(["--config", config, "--now", now, "run", "--once"]) == 0
    assert len(smtp_server.messages) == expected + 1
    assert db(tmp_path).execute("SELECT count(*) FROM messages").fetchone()[0] == len(sent_ids)


def start_run(config: Path, log: Path, now: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MAILBOT_NOW", None)
    if now is not None:
        env["MAILBOT_NOW"] = now
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "-v", "run"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=config.parent,
    )


def logged(log: Path, text: str, timeout: float, times: int = 1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text(errors="replace").count(text) >= times:
            return True
        time.sleep(0.02)
    return False


def wait_for_log(log: Path, text: str, timeout: float = 20.0) -> None:
    if logged(log, text, timeout):
        return
    raise AssertionError(f"{text!r} not logged within {timeout}s:\n{log.read_text()[-3000:]}")


def receipt_for(n: int) -> bytes:
    return build(
        "お問い合わせ",
        f"問い合わせ {n} です。",
        from_addr=f"sender{n}@example.co.jp",
        from_name=f"差出人{n}",
        message_id=f"<e2e.{n}@example.co.jp>",
    )


def test_long_running_process_answers_mail_as_it_arrives_and_stops_cleanly(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture
):
    """Polling is set to 10 minutes and IDLE is renewed every 30 s, so an answer within 10 s
    can only come from the server's IDLE announcement."""
    config = write_desk_config(tmp_path, dovecot, smtp_server, poll_interval=600.0)
    log = tmp_path / "run.log"
    # a Saturday noon: no morning report or digest may join the count of replies (on the real
    # clock, a business morning's report could arrive after the baseline was taken)
    proc = start_run(config, log, now="2026-11-28T12:00")
    try:
        wait_for_log(log, "running on 2 mailbox(es)")
        time.sleep(1.0)
        baseline = len(smtp_server.messages)
        for n in range(3):
            time.sleep(random.uniform(0.2, 2.0))
            dovecot.append("code", receipt_for(n))
            arrived = smtp_server.wait_for(baseline + n + 1, timeout=10)
            assert len(arrived) == baseline + n + 1, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    answered = [message_from_bytes(m.data)["In-Reply-To"] for m in participant_mail(smtp_server)]
    assert sorted(answered) == [f"<e2e.{n}@example.co.jp>" for n in range(3)]


def test_sigkill_at_random_moments_loses_nothing_and_answers_each_mail_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture
):
    """A small version of the reliability harness (bench/reliability.py runs the big one)."""
    config = write_desk_config(tmp_path, dovecot, smtp_server)
    total = 150
    for n in range(total):
        dovecot.deliver("code", receipt_for(n))
    rng = random.Random(7)
    kills = 0
    for round_ in range(8):
        round_log = tmp_path / f"run{round_}.log"
        proc = start_run(config, round_log)
        step, replies = rng.randint(1, 15), len(smtp_server.messages)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if round_ % 2 == 0 and round_log.read_bytes().count(b"outcome=") >= step:
                break
            if len(smtp_server.messages) >= replies + step:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    answered_before = len(participant_mail(smtp_server))
    assert answered_before < total, "the kills came after the work was done: nothing was tested"
    assert main(["--config", str(config), "run", "--once"]) == 0

    conn = db(tmp_path)
    per_mail = conn.execute(
        "SELECT message_id, count(DISTINCT case_id) AS cases FROM messages"
        " WHERE state = 'done' GROUP BY message_id"
    ).fetchall()
    assert len(per_mail) == total
    assert all(row["cases"] == 1 for row in per_mail)
    assert conn.execute("SELECT count(*) FROM messages WHERE state != 'done'").fetchone()[0] == 0
    unsent = conn.execute("SELECT count(*) FROM outbox WHERE state != 'sent'").fetchone()[0]
    assert unsent == 0
    answered = [message_from_bytes(m.data)["In-Reply-To"] for m in participant_mail(smtp_server)]
    assert set(answered) == {f"<e2e.{n}@example.co.jp>" for n in range(total)}
    # only a kill between the server's 250 and our commit can repeat a reply: at most one per kill
    assert len(answered) - total <= kills
