"""Reliability harness: faults and hostile input on the real parts (Dovecot, aiosmtpd, SQLite).

    .venv/bin/python -m bench.reliability            # the full run (a few minutes)
    .venv/bin/python -m bench.reliability --quick    # a small sanity run

1. crash: ≥ 500 mixed mails, `mailbot run` SIGKILLed at random moments ≥ 20 times (while
   fetching, processing and sending), then one clean `run --once`; every mail must end as
   exactly one case and every due reply be delivered. A reply can repeat only when the kill
   fell between the SMTP server's 250 and our commit: counted and reported, never more than one
   per kill.
2. smtp outage: the SMTP server down while replies are due; they wait, back off, and all go
   out exactly once when it is back.
3. dovecot restart in the middle of a batch under `mailbot run`.
4. hostile: ≥ 1,000 mutated and malicious mails through the pipeline: no crash, each stored
   as a case with a reason, no injected header in any reply. The attack classes of issue 11
   (workbooks that fool a size guard, formulas, robots, foreign Reply-To, unreadable senders,
   deep nesting, echoed names, Outlook Message-IDs, reused Message-IDs) and of issue 25 (a
   phishing display name and subject from a domain with no DMARC, a NUL or control character
   in From) are counted class by class with what each must never do.
5. trust scenarios: a complete application followed by what strangers and robots send into
   its thread (a question, an out-of-office reply, another free-mail user's form, a spoofed
   From with a foreign Reply-To): no case wiped, none hijacked.
6. reply robots (issue 25.2): a ticket robot answering each thread 12 times from a new
   address each round: never more automatic mails in a thread than rules/trust.toml allows,
   staff told at most once per thread.
7. desk attacks (issue 25): files readable by other users after a day's work under umask
   022, clear-text passwords to remote servers, 200 MB bodies and a connection flood against
   a real waitress server, the hostile corpus of malformed requests, and a case page over a
   thread of eight large mails (timed, beside what parsing them all takes).

Writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from email import message_from_bytes
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import mails  # noqa: E402
from bench.run import ENV, append_all, replies, servers, start_run  # noqa: E402
from tests.support.hostile import (  # noqa: E402
    ATTACKS,
    LOOP_ROBOT_VARIANTS,
    LURE,
    OUT_OF_OFFICE,
    TRUST_ATTACKS,
    hostile_mails,
    robot_round,
)
from tests.support.samples import samples  # noqa: E402
from tests.support.servers import Dovecot, SmtpCapture  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def once(config: Path, now: str | None = None) -> None:
    cmd = [sys.executable, "-m", "mailbot", "--config", str(config)]
    subprocess.run(
        cmd + (["--now", now] if now else []) + ["run", "--once"],
        env=ENV,
        check=True,
        capture_output=True,
    )


def _work_left(database: Path, dovecot: Dovecot) -> bool:
    """Whether the kill interrupted work: mail not yet fetched, processed or answered."""
    flags = dovecot.flags("code").values()
    if any(b"$MailbotStored" not in f for f in flags) or not database.exists():
        return True
    db = sqlite3.connect(database)
    try:
        return bool(
            db.execute(
                "SELECT (SELECT count(*) FROM messages WHERE state = 'stored')"
                " + (SELECT count(*) FROM outbox WHERE state = 'pending')"
            ).fetchone()[0]
        )
    finally:
        db.close()


def mixed(count: int) -> list[bytes]:
    """The deadline-day corpus plus robots and junk (they must be stored, never answered)."""
    robots = [s.raw for s in samples() if s.status == "ignored"]
    out = list(mails(count - count // 10, seed=31))
    for n in range(count // 10):
        raw = robots[n % len(robots)]
        out.append(raw.replace(b"Message-ID: <", b"Message-ID: <r%d." % n, 1))
    random.Random(5).shuffle(out)
    return out


def crash(count: int, kills: int) -> dict:
    raws = mixed(count)
    rng = random.Random(11)
    with servers() as desk:
        root, dovecot, smtp, config = desk.root, desk.dovecot, desk.smtp, desk.config
        chunk = -(-len(raws) // kills)
        mid_work = 0
        for k in range(kills):
            append_all(dovecot, raws[k * chunk : (k + 1) * chunk])
            log = root / f"run{k}.log"
            proc = start_run(config, log)
            step, sent = rng.randint(1, 12), len(smtp.messages)
            by_replies = rng.random() < 0.5
            deadline = time.monotonic() + 8.0
            while time.monotonic() < deadline:
                if by_replies and len(smtp.messages) >= sent + step:
                    break
                if not by_replies and log.exists() and log.read_bytes().count(b"outcome=") >= step:
                    break
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            mid_work += _work_left(root / "mailbot.db", dovecot)
        once(config)
        tally = _tally(root / "mailbot.db", smtp, raws)
    return {"mails": count, "kills": kills, "kills_with_work_in_flight": mid_work, **tally}


def _tally(database: Path, smtp: SmtpCapture, raws: list[bytes]) -> dict:
    """After the kills and one clean run: lost mails, mails with more than one case, mails
    never answered, replies still unsent, replies delivered twice, robots answered."""
    ids = [message_from_bytes(r)["Message-ID"] for r in raws]
    db = sqlite3.connect(database)
    try:
        per_mail = dict(
            db.execute(
                "SELECT message_id, count(DISTINCT case_id) FROM messages"
                " WHERE state IN ('done', 'quarantined') GROUP BY message_id"
            ).fetchall()
        )
        unsent = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    finally:
        db.close()
    answered = Counter(message_from_bytes(m.data)["In-Reply-To"] for m in replies(smtp))
    delivered_ids = Counter(message_from_bytes(m.data)["Message-ID"] for m in smtp.messages)
    robots = {
        i for i, r in zip(ids, raws, strict=True) if b"Auto-Submitted" in r or b"MAILER-DAEMON" in r
    }
    return {
        "lost": sum(1 for i in ids if i not in per_mail),
        "duplicated_cases": sum(1 for n in per_mail.values() if n > 1),
        "unanswered": sum(1 for i in ids if i not in robots and answered[i] == 0),
        "unsent_after_recovery": unsent,
        "duplicated_replies": sum(n - 1 for n in delivered_ids.values() if n > 1),
        "robots_answered": sum(answered[i] for i in robots),
    }


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.01)
    return False


# mails, kills: enough mail that every killed run starts on a backlog long enough for the
# read-ahead worker and the sender process (READ_AHEAD_FROM)
SOAK = {False: (1200, 20), True: (300, 6)}


def batch_kills(count: int, kills: int) -> dict:
    """`mailbot run --once` on a backlog, SIGKILLed `kills` times while it checks batches with
    the read-ahead worker and the sender process at work (each kill after a random number of
    mails, 5–40), then one clean run. Every mail must end as exactly one case and every due
    reply be delivered; a reply repeats only for a send the kill caught between the server's
    250 and its record. The helpers must leave with the killed process, before the next run."""
    raws = mixed(count)
    rng = random.Random(17)
    with servers() as desk:
        root, config = desk.root, desk.config
        append_all(desk.dovecot, raws)
        with_helpers = lingering = 0
        for k in range(kills):
            log = root / f"once{k}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "--config", str(config), "-v", "run", "--once"],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env=ENV,
            )
            step, helpers = rng.randint(5, 40), []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                helpers = _children(proc.pid) or helpers
                if log.read_bytes().count(b"outcome=") >= step:
                    break
                time.sleep(0.002)
            helpers = _children(proc.pid) or helpers
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            with_helpers += len(helpers) >= 2
            lingering += not _gone(helpers)
        once(config)
        tally = _tally(root / "mailbot.db", desk.smtp, raws)
    return {
        "mails": count,
        "kills": kills,
        "kills_with_worker_and_sender": with_helpers,
        "helpers_left_after_kill": lingering,
        **tally,
    }


def smtp_outage(count: int) -> dict:
    with servers() as desk:
        desk.smtp.stop()
        append_all(desk.dovecot, list(mails(count, seed=41)))
        once(desk.config, "2026-11-25T10:00:00+09:00")
        once(desk.config, "2026-11-25T10:00:30+09:00")  # still down, still waiting
        desk.smtp = SmtpCapture(port=desk.smtp.port).start()
        once(desk.config, "2026-11-25T10:30:00+09:00")  # past the backoff
        once(desk.config, "2026-11-25T11:30:00+09:00")
        ids = Counter(message_from_bytes(m.data)["Message-ID"] for m in replies(desk.smtp))
    return {
        "mails": count,
        "delivered_after_outage": len(ids),
        "duplicated": sum(n - 1 for n in ids.values() if n > 1),
    }


def dovecot_restart(count: int) -> dict:
    with servers() as desk:
        proc = start_run(desk.config, desk.root / "run.log")
        try:
            time.sleep(2)
            batch = list(mails(count, seed=51))
            append_all(desk.dovecot, batch[: count // 2])
            desk.smtp.wait_for(count // 4, timeout=60)
            desk.dovecot.restart()
            append_all(desk.dovecot, batch[count // 2 :])
            deadline = time.monotonic() + 120
            while len(replies(desk.smtp)) < count and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2)  # anything beyond one reply each would show up now
            answered = Counter(
                message_from_bytes(m.data)["In-Reply-To"] for m in replies(desk.smtp)
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "mails": count,
        "answered": len(answered),
        "duplicated": sum(n - 1 for n in answered.values() if n > 1),
    }


def hostile(count: int) -> dict:
    from mailbot.intake.runner import process_pending
    from tests.support.desk import make_desk

    kinds: Counter[str] = Counter()
    crashes = 0
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_desk(Path(tmp), "2026-11-25T10:00")
        for n, (what, raw) in enumerate(hostile_mails(count)):
            kinds[what] += 1
            key = f"h:{n}:{what}:{hashlib.sha256(raw).hexdigest()[:12]}"
            ctx.store.save_raw("code@occto.or.jp", [(key, raw)], ctx.now())
            try:
                process_pending(ctx)
            except Exception:
                crashes += 1
        rows = ctx.store.execute(
            "SELECT m.state, m.outcome, c.status, c.reason FROM messages m"
            " LEFT JOIN cases c ON c.id = m.case_id"
        ).fetchall()
        stored_with_reason = sum(
            1 for r in rows if r[0] in ("done", "quarantined") and r[2] and (r[1] or r[3])
        )
        injected = 0
        for (raw,) in ctx.store.execute("SELECT raw FROM outbox").fetchall():
            msg = message_from_bytes(raw)
            injected += msg["Bcc"] is not None or msg["X-Evil"] is not None
        quarantined = sum(1 for r in rows if r[0] == "quarantined")
        attacks = attack_classes(ctx, Path(tmp), kinds)
        ctx.close()
    return {
        "hostile_mails": count,
        "by_kind": dict(kinds),
        "crashes": crashes,
        "stored": len(rows),
        "stored_with_reason": stored_with_reason,
        "quarantined": quarantined,
        "injected_headers_in_replies": injected,
        "attacks": attacks,
    }


def _kind_rows(ctx) -> dict[str, list]:
    """Per hostile kind (the third part of the key `hostile` gave the mail): (outcome, case
    status, case id) of its mails."""
    out: dict[str, list] = {}
    for r in ctx.store.execute(
        "SELECT m.key, m.outcome, c.status, c.id FROM messages m"
        " LEFT JOIN cases c ON c.id = m.case_id"
    ).fetchall():
        out.setdefault(_kind_from_key(r[0]), []).append((r[1] or "", r[2] or "", r[3]))
    return out


def attack_classes(ctx, tmp: Path, kinds: Counter) -> dict:
    """The attack classes of issue 11, each with its count and what it must never do (every
    `failed_*` / `*_answered` count must be 0)."""
    from openpyxl import load_workbook

    from mailbot.desk.report import build_report, write_xlsx

    by_kind = _kind_rows(ctx)
    replied = {
        r[0]
        for r in ctx.store.execute("SELECT DISTINCT case_id FROM outbox WHERE case_id IS NOT NULL")
    }
    path = tmp / "report.xlsx"
    write_xlsx(build_report(ctx), path)
    formula_cells = sum(
        cell.data_type == "f"
        for sheet in load_workbook(path).worksheets
        for row in sheet.iter_rows()
        for cell in row
    )
    outbox = [
        (r[0], r[1]) for r in ctx.store.execute("SELECT recipient, raw FROM outbox").fetchall()
    ]
    result: dict = {}
    for kind in [*ATTACKS, *TRUST_ATTACKS]:
        rows = by_kind.get(kind, [])
        entry = {
            "mails": kinds.get(kind, 0),
            "stored": len(rows),
            "statuses": dict(Counter(status for _, status, _ in rows)),
        }
        if kind in ("out_of_office", "robot_sender"):
            entry["robots_answered"] = sum(1 for _, _, case in rows if case in replied)
        if kind in ("no_from", "junk_first_line", "unindented_continuation"):
            entry["ignored_without_sender"] = sum(
                1 for outcome, status, _ in rows if status == "ignored" and "sender" in outcome
            )
        if kind == "deep_nesting":
            entry["failed_not_quarantined"] = sum(
                1 for _, status, _ in rows if status != "quarantined"
            )
        if kind == "reused_message_id":
            entry["failed_swallowed_as_duplicate"] = sum(
                1 for outcome, _, _ in rows if outcome == "duplicate"
            )
        result[kind] = entry
    result["formula_subject"]["formula_cells_in_report"] = formula_cells
    result["foreign_reply_to"]["replies_to_reply_to"] = sum(
        1 for rcpt, _ in outbox if rcpt.endswith("@victim-corp.example")
    )
    result["echoed_names"]["control_or_bidi_in_replies"] = sum(
        1 for _, raw in outbox if _has_control_or_bidi(raw)
    )
    result["outlook_message_id"]["encoded_ids_in_replies"] = sum(
        1 for _, raw in outbox if b"In-Reply-To: =?" in raw or b"References: =?" in raw
    )
    result["smuggled_from"]["claimed_senders_answered"] = sum(
        1 for rcpt, _ in outbox if rcpt.endswith("@victim-corp.example")
    )
    result["smuggled_from"]["failed_not_held"] = sum(
        1 for _, status, _ in by_kind.get("smuggled_from", []) if status != "held"
    )
    result["forged_bounce"]["staff_alerts"] = sum(
        1
        for (kind,) in ctx.store.execute("SELECT kind FROM outbox").fetchall()
        if kind == "staff_undeliverable"
    )
    result["raw_rfc2231_name"]["failed_quarantined"] = result["raw_rfc2231_name"]["statuses"].get(
        "quarantined", 0
    )
    result["hidden_address_name"]["failed_address_in_name"] = sum(
        1
        for case in {c for _, _, c in by_kind.get("hidden_address_name", [])}
        if "@" in ((ctx.store.case(case) or {}).get("sender_name") or "")
    )
    result["phishing_name"]["failed_links_in_replies"] = sum(
        1 for rcpt, raw in outbox if rcpt.endswith("@no-dmarc.example") and _carries_link(raw)
    )
    result["control_from"]["failed_answered"] = sum(
        1 for _, _, case in by_kind.get("control_from", []) if case in replied
    )
    result["control_from"]["failed_not_held"] = sum(
        1 for _, status, _ in by_kind.get("control_from", []) if status != "held"
    )
    return result


def _carries_link(raw: bytes) -> bool:
    """The reply, decoded and NFKC'd, names the stranger's lure host or any `://` link."""
    import unicodedata

    from tests.support.desk import body_text

    text = unicodedata.normalize("NFKC", body_text(raw)).lower()
    return LURE in text or "://" in text


def _kind_from_key(key: str) -> str:
    return key.split(":", 3)[2] if key.count(":") >= 3 else "?"


def _has_control_or_bidi(raw: bytes) -> bool:
    import unicodedata

    msg = message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            text = (part.get_payload(decode=True) or b"").decode(
                part.get_content_charset() or "utf-8", "replace"
            )
            if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\r\n\t" for ch in text):
                return True
    return False


def trust_scenarios(rounds: int) -> dict:
    """A complete application, then into its thread: a question, an out-of-office robot, a
    stranger at the same free-mail domain with her own form, a spoofed From with a foreign
    Reply-To carrying another form. Counts cases wiped (status or data changed) and hijacked
    (a stranger's data merged), and replies that went to a Reply-To."""
    from mailbot.intake.runner import process_pending
    from tests.support.desk import make_desk
    from tests.support.forms import operator_form, to_bytes
    from tests.support.jpmail import XLSX, build
    from tests.support.samples import TAKAHASHI

    subject = "【容量市場向け事業者コード申請】"
    body = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。"

    def form(**fields: str) -> list:
        book = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI | fields))
        return [("事業者マスタ申込書.xlsx", book, XLSX)]

    wiped = hijacked = to_reply_to = 0
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_desk(Path(tmp), "2026-11-20T10:00")

        def feed(raw: bytes) -> None:
            key = f"s:{hashlib.sha256(raw).hexdigest()}"
            ctx.store.save_raw("code@occto.or.jp", [(key, raw)], ctx.now())
            process_pending(ctx)

        for n in range(rounds):
            victim = f"victim{n}@gmail.com"
            feed(build(subject, body, from_addr=victim, attachments=form()))
            case_id = ctx.store.execute("SELECT max(id) FROM cases").fetchone()[0]
            before = ctx.store.case(case_id)
            receipt = ctx.store.execute(
                "SELECT message_id, subject FROM outbox WHERE case_id = ? AND kind = 'receipt'",
                (case_id,),
            ).fetchone()
            thread = {"in_reply_to": receipt[0], "references": (receipt[0],)}
            feed(build(f"Re: {receipt[1]}", "いつ頃になりますか。", from_addr=victim, **thread))
            ooo = OUT_OF_OFFICE[n % len(OUT_OF_OFFICE)] + f" {receipt[1]}"
            feed(build(ooo, "不在です。", from_addr=victim, **thread))
            feed(
                build(
                    f"Re: {receipt[1]}",
                    body,
                    from_addr=f"eve{n}@gmail.com",
                    attachments=form(事業者名称="イブ商事株式会社"),
                    **thread,
                )
            )
            feed(
                build(
                    f"Re: {receipt[1]}",
                    body,
                    from_addr=victim,
                    headers={"Reply-To": f"attacker{n}@evil.example"},
                    attachments=form(事業者名称="乗っ取り商事株式会社"),
                    **thread,
                )
            )
            after = ctx.store.case(case_id)
            wiped += after["status"] != before["status"] or after["data"] != before["data"]
            names = str(after["data"])
            hijacked += "イブ商事" in names or "乗っ取り" in names or after["sender"] != victim
        to_reply_to = ctx.store.execute(
            "SELECT count(*) FROM outbox WHERE recipient LIKE '%@evil.example'"
        ).fetchone()[0]
        ctx.close()
    return {
        "rounds": rounds,
        "mails": rounds * 5,
        "cases_wiped": wiped,
        "cases_hijacked": hijacked,
        "replies_to_reply_to": to_reply_to,
    }


def reply_robots(threads: int, rounds: int = 12) -> dict:
    """Issue 25.2: a ticket robot answers each thread `rounds` times, from a new plus-address
    at a free-mail domain or a new domain each round, to our first or our latest mail, with
    none of the headers robots should send. Counts, per thread, our automatic mails (never
    above rules/trust.toml `automatic_per_thread`) and the staff alerts (at most one)."""
    from mailbot.intake.runner import process_pending
    from mailbot.mail.trust import load_trust_rules
    from tests.support.desk import make_desk
    from tests.support.hostile import application_from

    per_thread: list[int] = []
    alerts: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_desk(Path(tmp), "2026-11-20T10:00")
        cap = load_trust_rules(ctx.config.rules_dir).automatic_per_thread
        staff = set(ctx.config.staff_addresses)

        def feed(raw: bytes) -> int:
            key = f"r:{hashlib.sha256(raw).hexdigest()}"
            ctx.store.save_raw("code@occto.or.jp", [(key, raw)], ctx.now())
            [result] = process_pending(ctx)
            return result.case_id

        for t in range(threads):
            variant = LOOP_ROBOT_VARIANTS[t % len(LOOP_ROBOT_VARIANTS)]
            root = feed(application_from(f"applicant{t}@company{t}.example"))
            first = ctx.store.execute("SELECT max(id) FROM outbox").fetchone()[0]
            for n in range(rounds):
                ours = [
                    dict(r)
                    for r in ctx.store.execute(
                        "SELECT message_id, subject, recipient FROM outbox WHERE id >= ?"
                        " ORDER BY id",
                        (first,),
                    ).fetchall()
                    if r["recipient"] not in staff
                ]
                feed(robot_round(variant, t * 100 + n, first=ours[0], latest=ours[-1]))
            rows = ctx.store.execute(
                "SELECT recipient, kind FROM outbox WHERE id >= ?", (first,)
            ).fetchall()
            per_thread.append(sum(1 for r in rows if r["recipient"] not in staff))
            told = ctx.store.execute(
                "SELECT count(*) FROM events WHERE kind = 'staff_told_loop' AND case_id = ?",
                (root,),
            ).fetchone()[0]
            alerts.append(told)
        ctx.close()
    return {
        "threads": threads,
        "rounds_per_thread": rounds,
        "robot_mails": threads * rounds,
        "cap_per_thread": cap,
        "most_mails_in_a_thread": max(per_thread),
        "threads_over_cap": sum(1 for n in per_thread if n > cap),
        "staff_told_per_thread_at_most": max(alerts),
    }


def desk_attacks(quick: bool) -> dict:
    """Issue 25's attacks on the host and the web desk, each with its count and what it must
    never do (every `failed_*` count must be 0): files readable by other users after a day's
    work under umask 022, clear-text passwords to a remote server, oversized bodies and a
    connection flood against a real waitress server, the malformed requests of the hostile
    corpus, and one participant's thread of large mails against the case page (timed)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        return {
            "file_modes": _file_modes(root / "modes"),
            "plaintext_passwords": _plaintext_configs(root / "plain"),
            **_web_attacks(root / "web", quick),
        }


def _file_modes(root: Path) -> dict:
    root.mkdir()
    samples_dir = ROOT / "mailbot" / "samples"
    commands = [
        ["deliver", *map(str, sorted(samples_dir.glob("*.eml")))],
        ["run", "--once"],
        ["report", "--xlsx", "out/queue.xlsx", "--html", "out/queue.html"],
        ["backup"],
    ]
    under_022 = ["sh", "-c", 'umask 022 && exec "$@"', "sh"]
    for command in commands:
        subprocess.run(
            [*under_022, sys.executable, "-m", "mailbot", "--now", "2026-11-25T10:00", *command],
            cwd=root,
            check=True,
            capture_output=True,
        )
    paths = list(root.rglob("*"))
    wide = [p for p in paths if p.stat().st_mode & 0o077]
    return {"files_and_folders": len(paths), "failed_readable_by_others": len(wide)}


def _plaintext_configs(root: Path) -> dict:
    from mailbot.config import DEFAULT_CONFIG, parse_config
    from mailbot.errors import ConfigError

    hosts = ["imap.example.jp", "192.0.2.10", "[2001:db8::1]", "localhost.example.jp", "10.0.0.1"]
    loaded = 0
    for host in hosts:
        text = DEFAULT_CONFIG.replace(
            'backend = "maildir"\npath = "data/outbox"',
            f'backend = "smtp"\nhost = "{host}"\nsecurity = "none"\npassword = "secret"',
        )
        try:
            parse_config(text, "bench", root)
            loaded += 1
        except ConfigError:
            continue
    return {"configs": len(hosts), "failed_loaded": loaded}


def _web_attacks(root: Path, quick: bool) -> dict:
    import socket
    import threading

    from mailbot.clock import Clock, parse_instant
    from mailbot.config import DEFAULT_CONFIG, parse_config
    from mailbot.context import Context
    from mailbot.desk.staff import add_staff
    from mailbot.desk.web.app import create_app
    from mailbot.desk.web.server import build_server
    from tests.support.hostile import MALFORMED_REQUESTS

    root.mkdir()
    config = parse_config(DEFAULT_CONFIG, "bench", root)
    clock = Clock(parse_instant("2026-11-25T10:00"))
    with Context.open(config, clock) as ctx:
        add_staff(ctx, "sato", "佐藤", "sato-password-1")
        thread_size = _large_thread(ctx, 8, (2 if quick else 19) * 1024 * 1024)
    app = create_app(config, clock)
    per_client = config.web.connections_per_client
    server = build_server(app, config, host="127.0.0.1", port=0)
    runner = threading.Thread(target=server.run, daemon=True)
    runner.start()
    port = server.effective_port

    def talk(sock: socket.socket, request: bytes) -> bytes:
        data = b""
        try:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                data += chunk
        except OSError:
            pass
        return data

    oversize = 20
    answered_413 = 0
    for _ in range(oversize):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            answered_413 += talk(
                sock,
                b"POST /login HTTP/1.1\r\nHost: desk\r\nContent-Length: 209715200\r\n\r\n",
            ).startswith(b"HTTP/1.1 413")
    held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(per_client)]
    answers = [_served(sock) for sock in held]  # kept open: each now holds its place
    for _ in range(per_client * 3):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            answers.append(
                talk(sock, b"GET /login HTTP/1.1\r\nHost: desk\r\nConnection: close\r\n\r\n")
            )
    for sock in held:
        sock.close()
    sockets = server._map
    server.trigger.pull_trigger(lambda: [d.close() for d in list(sockets.values())])
    runner.join(20)
    server.task_dispatcher.shutdown()

    client = _staff_client(app)
    csrf = _csrf(client.get("/cases/1", base_url="https://localhost").text)
    server_errors = 0
    for _kind, method, path, form in MALFORMED_REQUESTS:
        if method == "GET":
            r = client.get(path, base_url="https://localhost")
        else:
            r = client.post(path, data=form | {"csrf": csrf}, base_url="https://localhost")
        server_errors += r.status_code >= 500
    views = 5
    started = time.perf_counter()
    for _ in range(views):
        assert client.get("/cases/1", base_url="https://localhost").status_code == 200
    page_ms = (time.perf_counter() - started) / views * 1000
    return {
        "oversized_bodies": {
            "requests": oversize,
            "body_bytes_sent": 0,
            "failed_not_refused_from_headers": oversize - answered_413,
        },
        "connection_flood": {
            "connections": len(answers),
            "served": sum(a.startswith(b"HTTP/1.1 200") for a in answers),
            "refused_429": sum(a.startswith(b"HTTP/1.1 429") for a in answers),
            "failed_served_over_cap": max(
                0, sum(a.startswith(b"HTTP/1.1 200") for a in answers) - per_client
            ),
        },
        "malformed_requests": {
            "requests": len(MALFORMED_REQUESTS),
            "failed_server_errors": server_errors,
        },
        "large_thread": thread_size | {"case_page_ms": round(page_ms, 1)},
    }


def _served(sock) -> bytes:
    """One GET /login on a kept-alive connection: the response head and its body."""
    sock.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    while len(body) < (lengths[0] if lengths else 0) and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def _large_thread(ctx, count: int, size: int) -> dict:
    """`count` mails of `size` bytes of attachment each on one case (the case number in the
    subject), and what parsing them all takes: what every view of the case cost before
    issue 25 point 7."""
    from mailbot.intake.runner import process_pending
    from mailbot.mail.parse import parse
    from tests.support.jpmail import build

    raws = [
        build(
            "ご相談" if n == 0 else "Re: ご相談 [MB-000001]",
            f"{n} 通目です。",
            from_addr="heavy@example.jp",
            charset="utf-8",
            attachments=[(f"資料{n}.pdf", random.randbytes(size), "application/pdf")],
        )
        for n in range(count)
    ]
    for n, raw in enumerate(raws):
        ctx.store.save_raw("code@occto.or.jp", [(f"heavy:{n}", raw)], ctx.now())
        process_pending(ctx)
    started = time.perf_counter()
    for raw in raws:
        parse(raw)
    parse_ms = (time.perf_counter() - started) * 1000
    on_case = ctx.store.execute("SELECT count(*) FROM messages WHERE case_id = 1").fetchone()[0]
    return {
        "mails": count,
        "mb_each": round(len(raws[0]) / 1024 / 1024, 1),
        "on_one_case": on_case,
        "parsing_them_all_ms": round(parse_ms, 1),
    }


def _staff_client(app):
    client = app.test_client()
    page = client.get("/login", base_url="https://localhost").text
    client.post(
        "/login",
        data={"login": "sato", "password": "sato-password-1", "csrf": _csrf(page)},
        base_url="https://localhost",
    )
    return client


def _csrf(html: str) -> str:
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', html)
    return found.group(1) if found else ""


def _desk_attack_failures(attacks: dict) -> int:
    """Every `failed_*` count of the desk attacks (each must be 0)."""
    return sum(
        v
        for entry in attacks.values()
        if isinstance(entry, dict)
        for k, v in entry.items()
        if k.startswith("failed_") and isinstance(v, int)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--batch-kills-only",
        action="store_true",
        help="only the kills of run --once with its helpers, merged into reliability.json",
    )
    parser.add_argument(
        "--desk-attacks-only",
        action="store_true",
        help="only issue 25's desk attacks, merged into reliability.json",
    )
    args = parser.parse_args()
    if args.batch_kills_only:
        return batch_kills_only(args.quick)
    if args.desk_attacks_only:
        return desk_attacks_only(args.quick)
    n_crash, n_kills, n_hostile, n_scenarios = (
        (120, 6, 200, 5) if args.quick else (500, 20, 1000, 40)
    )
    started = time.perf_counter()
    print("crash …", flush=True)
    crashed = crash(n_crash, n_kills)
    print("batch kills …", flush=True)
    soak = batch_kills(*SOAK[args.quick])
    print("smtp outage …", flush=True)
    outage = smtp_outage(40)
    print("dovecot restart …", flush=True)
    restart = dovecot_restart(100)
    print("hostile …", flush=True)
    bad = hostile(n_hostile)
    print("trust scenarios …", flush=True)
    trust = trust_scenarios(n_scenarios)
    print("reply robots …", flush=True)
    robots = reply_robots(n_scenarios // 2)
    print("desk attacks …", flush=True)
    desk = desk_attacks(args.quick)
    result = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "kills": crashed["kills"],
        "mails": crashed["mails"],
        "lost": crashed["lost"],
        "duplicated_cases": crashed["duplicated_cases"],
        "duplicated_replies": crashed["duplicated_replies"],
        "hostile_mails": bad["hostile_mails"],
        "crashes": bad["crashes"],
        "stored_with_reason": bad["stored_with_reason"],
        "crash": crashed,
        "batch_kills": soak,
        "smtp_outage": outage,
        "dovecot_restart": restart,
        "hostile": bad,
        "trust_scenarios": trust,
        "reply_robots": robots,
        "desk_attacks": desk,
        "seconds": round(time.perf_counter() - started, 1),
    }
    for key in (
        "kills",
        "mails",
        "lost",
        "duplicated_cases",
        "duplicated_replies",
        "hostile_mails",
        "crashes",
        "stored_with_reason",
    ):
        print(f"{key:<20} {result[key]}")
    print(f"crash run            {crashed}")
    print(f"batch kills          {soak}")
    print(f"smtp outage          {outage}")
    print(f"dovecot restart      {restart}")
    print(f"hostile              {bad}")
    print(f"trust scenarios      {trust}")
    print(f"reply robots         {robots}")
    print(f"desk attacks         {desk}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "reliability-quick.json" if args.quick else "reliability.json"
    (RESULTS / name).write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    failed = (
        crashed["lost"]
        or crashed["duplicated_cases"]
        or crashed["unanswered"]
        or crashed["unsent_after_recovery"]
        or crashed["duplicated_replies"] > crashed["kills"]
        or crashed["robots_answered"]
        or _soak_failed(soak)
        or outage["delivered_after_outage"] != outage["mails"]
        or outage["duplicated"]
        or restart["answered"] != restart["mails"]
        or restart["duplicated"]
        or bad["crashes"]
        or bad["stored_with_reason"] != bad["hostile_mails"]
        or bad["injected_headers_in_replies"]
        or _attack_failures(bad["attacks"])
        or trust["cases_wiped"]
        or trust["cases_hijacked"]
        or trust["replies_to_reply_to"]
        or robots["threads_over_cap"]
        or robots["staff_told_per_thread_at_most"] > 1
        or _desk_attack_failures(desk)
    )
    print("FAILED" if failed else "all guarantees held")
    return 1 if failed else 0


def _soak_failed(soak: dict) -> bool:
    return bool(
        soak["lost"]
        or soak["duplicated_cases"]
        or soak["unanswered"]
        or soak["unsent_after_recovery"]
        or soak["duplicated_replies"] > soak["kills"]
        or soak["robots_answered"]
        or soak["helpers_left_after_kill"]
    )


def batch_kills_only(quick: bool) -> int:
    """Re-run only the batch kills and merge them into the results file, marked with their
    own time; the other figures stay those of the last full run."""
    count, kills = SOAK[quick]
    path = RESULTS / ("reliability-quick.json" if quick else "reliability.json")
    result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    print("batch kills …", flush=True)
    soak = batch_kills(count, kills)
    soak["when"] = datetime.now().astimezone().isoformat(timespec="seconds")
    result["batch_kills"] = soak
    print(f"batch kills          {soak}")
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    failed = _soak_failed(soak)
    print("FAILED" if failed else "all guarantees held")
    return 1 if failed else 0


def desk_attacks_only(quick: bool) -> int:
    """Re-run only the desk attacks and merge them into the results file, marked with their
    own time; the other figures stay those of the last full run."""
    path = RESULTS / ("reliability-quick.json" if quick else "reliability.json")
    result = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    print("desk attacks …", flush=True)
    desk = desk_attacks(quick)
    desk["when"] = datetime.now().astimezone().isoformat(timespec="seconds")
    result["desk_attacks"] = desk
    print(f"desk attacks         {desk}")
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    failed = _desk_attack_failures(desk)
    print("FAILED" if failed else "all guarantees held")
    return 1 if failed else 0


def _attack_failures(attacks: dict) -> int:
    """Every count that must be 0, over all attack classes; and every mail stored."""
    bad = 0
    for entry in attacks.values():
        bad += entry["stored"] != entry["mails"]
        bad += sum(v for k, v in entry.items() if k not in ("mails", "stored", "statuses"))
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
