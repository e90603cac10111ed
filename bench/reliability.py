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
   as a case with a reason, no injected header in any reply.

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
from tests.hostile import hostile_mails  # noqa: E402
from tests.samples import samples  # noqa: E402
from tests.servers import Dovecot, SmtpCapture  # noqa: E402

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
    ids = [message_from_bytes(r)["Message-ID"] for r in raws]
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
        db = sqlite3.connect(root / "mailbot.db")
        per_mail = dict(
            db.execute(
                "SELECT message_id, count(DISTINCT case_id) FROM messages"
                " WHERE state IN ('done', 'quarantined') GROUP BY message_id"
            ).fetchall()
        )
        unsent = db.execute("SELECT count(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        answered = Counter(message_from_bytes(m.data)["In-Reply-To"] for m in replies(smtp))
        delivered_ids = Counter(message_from_bytes(m.data)["Message-ID"] for m in smtp.messages)
        db.close()
    robots = {
        i for i, r in zip(ids, raws, strict=True) if b"Auto-Submitted" in r or b"MAILER-DAEMON" in r
    }
    lost = sum(1 for i in ids if i not in per_mail)
    unanswered = sum(1 for i in ids if i not in robots and answered[i] == 0)
    return {
        "mails": count,
        "kills": kills,
        "kills_with_work_in_flight": mid_work,
        "lost": lost,
        "duplicated_cases": sum(1 for n in per_mail.values() if n > 1),
        "unanswered": unanswered,
        "unsent_after_recovery": unsent,
        "duplicated_replies": sum(n - 1 for n in delivered_ids.values() if n > 1),
        "robots_answered": sum(answered[i] for i in robots),
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
    from mailbot.runner import process_pending
    from tests.desk import make_desk

    kinds: Counter[str] = Counter()
    crashes = 0
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_desk(Path(tmp), "2026-11-25T10:00")
        for n, (what, raw) in enumerate(hostile_mails(count)):
            kinds[what] += 1
            key = f"h:{n}:{hashlib.sha256(raw).hexdigest()[:12]}"
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
        ctx.close()
    return {
        "hostile_mails": count,
        "by_kind": dict(kinds),
        "crashes": crashes,
        "stored": len(rows),
        "stored_with_reason": stored_with_reason,
        "quarantined": quarantined,
        "injected_headers_in_replies": injected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_crash, n_kills, n_hostile = (120, 6, 200) if args.quick else (500, 20, 1000)
    started = time.perf_counter()
    print("crash …", flush=True)
    crashed = crash(n_crash, n_kills)
    print("smtp outage …", flush=True)
    outage = smtp_outage(40)
    print("dovecot restart …", flush=True)
    restart = dovecot_restart(100)
    print("hostile …", flush=True)
    bad = hostile(n_hostile)
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
        "smtp_outage": outage,
        "dovecot_restart": restart,
        "hostile": bad,
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
    print(f"smtp outage          {outage}")
    print(f"dovecot restart      {restart}")
    print(f"hostile              {bad}")
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
        or outage["delivered_after_outage"] != outage["mails"]
        or outage["duplicated"]
        or restart["answered"] != restart["mails"]
        or restart["duplicated"]
        or bad["crashes"]
        or bad["stored_with_reason"] != bad["hostile_mails"]
        or bad["injected_headers_in_replies"]
    )
    print("FAILED" if failed else "all guarantees held")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
