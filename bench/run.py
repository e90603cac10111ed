"""mailbot benchmarks against the floor, on real parts (a private Dovecot, aiosmtpd, SQLite).

    .venv/bin/python -m bench.run            # the full run (several minutes)
    .venv/bin/python -m bench.run --quick    # a small sanity run

Prints a table and writes bench/results/latest.json plus a dated copy (`--scale-only`: only the
100,000-case and ISO-2022-JP figures, merged into latest.json). Targets (issue 8, issue 17):
throughput ≥ half the floor, latency p50 < 0.7 s and p99 < 1.5 s, peak RSS < 200 MB, no
throughput drop from 500 to 8,000 mails; at 100,000 cases `cases --json` < 1 s, the report
with 30,000 open rows < 3 s, the web queue < 200 ms and search < 300 ms; ISO-2022-JP with
Outlook's extensions no slower than plain JIS.
"""

from __future__ import annotations

import argparse
import email
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email import policy
from pathlib import Path

from openpyxl import load_workbook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import mails  # noqa: E402
from tests.support.jpmail import XLSX, build  # noqa: E402
from tests.support.servers import STAFF, Dovecot, SmtpCapture, write_desk_config  # noqa: E402

RESULTS = ROOT / "bench" / "results"
LIMITS = "\n[limits]\nauto_replies_per_sender_per_day = 1000\n"
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
MEASURE = (
    "import subprocess, sys, time\n"
    "proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "peak = 0\n"
    "while proc.poll() is None:\n"
    "    try:\n"
    "        for line in open(f'/proc/{proc.pid}/status'):\n"
    "            if line.startswith('VmHWM:'):\n"
    "                peak = max(peak, int(line.split()[1]))\n"
    "    except (OSError, ValueError):\n"
    "        pass\n"
    "    time.sleep(0.005)\n"
    "print(peak, proc.returncode)\n"
)
"""Peak RSS of the mailbot process alone: its own VmHWM, polled until it exits. (ru_maxrss is
inherited across fork and exec on Linux, so it would report the benchmark's own size.)"""


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
    }


@dataclass
class Servers:
    root: Path
    dovecot: Dovecot
    smtp: SmtpCapture
    config: Path


@contextmanager
def servers() -> Iterator[Servers]:
    """A private Dovecot and aiosmtpd with a mailbot configuration for them, torn down after.
    Polling is set to 10 minutes (IDLE does the work) and the reply budget is lifted."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dovecot, smtp = Dovecot().start(), SmtpCapture().start()
        config = write_desk_config(root, dovecot, smtp, poll_interval=600.0, extra=LIMITS)
        fixture = Servers(root, dovecot, smtp, config)
        try:
            yield fixture
        finally:
            fixture.smtp.stop()
            fixture.dovecot.close()


def start_run(config: Path, log: Path) -> subprocess.Popen:
    """`mailbot run` as its own process, logging one line per mail to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(config), "-v", "run"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=ENV,
    )


def replies(smtp: SmtpCapture) -> list:
    """What reached aiosmtpd for participants (staff reports excluded)."""
    return [m for m in smtp.messages if STAFF not in m.rcpt_tos]


def mailbot(config: Path, *args: str, now: str | None = None) -> tuple[float, float]:
    """Run the CLI in a fresh process; returns (seconds, peak RSS in MB of that process)."""
    cmd = [sys.executable, "-m", "mailbot", "--config", str(config)]
    if now:
        cmd += ["--now", now]
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd, *args],
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    ).stdout.split()
    seconds = time.perf_counter() - started
    if out[1] != "0":
        raise RuntimeError(f"mailbot {' '.join(args)} exited {out[1]}")
    return seconds, int(out[0]) / 1024


def append_all(dovecot: Dovecot, raws: list[bytes]) -> None:
    client = dovecot.client("code")
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()


def floor(dovecot: Dovecot) -> float:
    """What any mail desk must do at least: fetch every mail, decode every part, read every
    cell of every workbook. Returns seconds."""
    started = time.perf_counter()
    client = dovecot.client("code")
    uids = client.search(["ALL"])
    for i in range(0, len(uids), 100):
        batch = client.fetch(uids[i : i + 100], ["BODY.PEEK[]"])
        for item in batch.values():
            msg = email.message_from_bytes(item[b"BODY[]"], policy=policy.default)
            for part in msg.walk():
                if part.is_multipart():
                    continue
                content = part.get_content()
                if (part.get_filename() or "").endswith(".xlsx"):
                    book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
                    for ws in book.worksheets:
                        for _row in ws.iter_rows(values_only=True):
                            pass
                    book.close()
    client.logout()
    return time.perf_counter() - started


def throughput(count: int) -> dict:
    raws = list(mails(count))
    with servers() as desk:
        append_all(desk.dovecot, raws)
        floor_s = floor(desk.dovecot)
        seconds, rss = mailbot(desk.config, "run", "--once", now="2026-11-25T10:00:00+09:00")
        answered = replies(desk.smtp)
        if len(answered) < count * 0.95:
            raise RuntimeError(f"only {len(answered)} of {count} mails were answered")
    return {
        "mails": count,
        "mb": round(sum(len(r) for r in raws) / 1e6, 1),
        "seconds": round(seconds, 2),
        "mails_per_s": round(count / seconds, 1),
        "floor_seconds": round(floor_s, 2),
        "floor_mails_per_s": round(count / floor_s, 1),
        "peak_rss_mb": round(rss, 1),
    }


def latency(count: int) -> dict:
    rng = random.Random(7)
    times = []
    with servers() as desk:
        log = desk.root / "run.log"
        proc = start_run(desk.config, log)
        try:
            deadline = time.monotonic() + 30
            while not log.exists() or b"running on" not in log.read_bytes():
                if time.monotonic() > deadline:
                    raise RuntimeError("mailbot run did not start")
                time.sleep(0.05)
            time.sleep(2.0)
            baseline = len(desk.smtp.messages)
            client = desk.dovecot.client("code")
            for n, raw in enumerate(mails(count, seed=99)):
                time.sleep(rng.uniform(0.05, 0.6))
                started = time.perf_counter()
                client.append("INBOX", raw)
                if len(desk.smtp.wait_for(baseline + n + 1, timeout=30)) < baseline + n + 1:
                    raise RuntimeError(f"mail {n} not answered within 30 s")
                times.append(time.perf_counter() - started)
            client.logout()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    q = statistics.quantiles(times, n=100, method="inclusive")
    return {
        "mails": count,
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(q[94], 3),
        "p99_s": round(q[98], 3),
        "max_s": round(max(times), 3),
    }


def _peak_rss_mb(pid: int) -> float:
    """The process's own high-water mark (VmHWM): its peak RSS since it started."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def drain_latency(backlog: int, probes: int) -> dict:
    """Arrival → receipt while a backlog drains: `backlog` mails wait in the mailbox when
    `mailbot run` starts, and `probes` more are APPENDed one by one while it works through
    them (from the first mail its log shows processed on: a probe APPENDed before the daemon
    has even searched the mailbox is part of the backlog it finds). Each probe's latency runs from just before its APPEND to the moment aiosmtpd has
    its receipt (In-Reply-To). Also the daemon's peak RSS over the whole drain."""
    rng = random.Random(13)
    probe_raws = [
        r.replace(b"@company", b"@probe.company")  # senders of their own, not the backlog's
        for r in mails(probes * 3, seed=77)
        if XLSX.encode() in r
    ][:probes]
    ids = [email.message_from_bytes(r, policy=policy.compat32)["Message-ID"] for r in probe_raws]
    seen: dict[str, float] = {}
    stop = threading.Event()
    with servers() as desk:
        append_all(desk.dovecot, list(mails(backlog)))

        def watch() -> None:
            counted = 0
            while not stop.is_set():
                got = desk.smtp.messages
                for m in got[counted:]:
                    parsed = email.message_from_bytes(m.data, policy=policy.compat32)
                    seen.setdefault(parsed["In-Reply-To"] or "", time.perf_counter())
                counted = len(got)
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        log = desk.root / "drain.log"
        started = time.perf_counter()
        proc = start_run(desk.config, log)
        sent_at: dict[str, float] = {}
        try:
            _wait_for_first_mail(log, proc)
            client = desk.dovecot.client("code")
            for mid, raw in zip(ids, probe_raws, strict=True):
                time.sleep(rng.uniform(0.05, 0.3))
                sent_at[mid] = time.perf_counter()
                client.append("INBOX", raw)
            client.logout()
            deadline, last, quiet = time.monotonic() + 600, -1, time.monotonic()
            grown = time.perf_counter()
            while time.monotonic() < deadline:
                count = len(replies(desk.smtp))
                if count != last:
                    last, quiet, grown = count, time.monotonic(), time.perf_counter()
                elif count >= (backlog + probes) * 0.95 and time.monotonic() - quiet > 3:
                    break
                time.sleep(0.2)
            drained = grown - started
            rss = _peak_rss_mb(proc.pid)
        finally:
            stop.set()
            proc.terminate()
            proc.wait(timeout=60)
        unanswered = _whereabouts(desk.root, [i for i in ids if i not in seen])
    times = [seen[i] - sent_at[i] for i in ids if i in seen]
    if len(times) < probes * 0.9:
        raise RuntimeError(f"only {len(times)} of {probes} probes were answered: {unanswered}")
    q = statistics.quantiles(times, n=100, method="inclusive")
    return {
        "backlog": backlog,
        "probes": probes,
        "answered_probes": len(times),
        "unanswered": unanswered,
        "p50_s": round(statistics.median(times), 3),
        "p99_s": round(q[98], 3),
        "max_s": round(max(times), 3),
        "drain_seconds": round(drained, 1),
        "peak_rss_mb": round(rss, 1),
    }


def _whereabouts(root: Path, message_ids: list[str]) -> list[dict]:
    """Where each unanswered probe stopped (stored? processed how? its replies' state), so that
    a probe missing from a run can be told apart: a reply still waiting in the outbox after
    the drain went quiet is a latency bug in the daemon, a mail never fetched is not."""
    import sqlite3

    if not message_ids:
        return []
    conn = sqlite3.connect(f"file:{root / 'mailbot.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    found = []
    try:
        for mid in message_ids:
            row = conn.execute(
                "SELECT id, state, outcome, case_id, received_at, processed_at FROM messages"
                " WHERE message_id IN (?, ?)",
                (mid, mid.strip("<>")),
            ).fetchone()
            where: dict = {"message_id": mid, "message": dict(row) if row else None}
            if row and row["case_id"]:
                where["outbox"] = [
                    dict(r)
                    for r in conn.execute(
                        "SELECT kind, state, send_at, sent_at, attempts, last_error FROM outbox"
                        " WHERE case_id = ?",
                        (row["case_id"],),
                    )
                ]
            found.append(where)
    finally:
        conn.close()
    return found


def _wait_for_first_mail(log: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while b" mail key=" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("mailbot run processed none of its backlog")
        time.sleep(0.02)


def large_attachment() -> float:
    blob = random.Random(1).randbytes(20 * 1024 * 1024)
    raw = build(
        "【容量市場向け事業者コード申請】大きな添付",
        "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。\n",
        attachments=[("需要抑制量調整供給契約書.pdf", blob, "application/pdf")],
        message_id="<large@example.co.jp>",
    )
    with servers() as desk:
        append_all(desk.dovecot, [raw])
        _seconds, rss = mailbot(desk.config, "run", "--once", now="2026-11-25T10:00:00+09:00")
        if not desk.smtp.messages:
            raise RuntimeError("the large mail was not answered")
    return round(rss, 1)


def fill_cases(root: Path, cases: int, open_share: float) -> Path:
    """A configuration whose store holds `cases` generated cases, `open_share` of them open
    (years of closed cases and a season's backlog), each in the search index as mailbot would
    have put it there. Returns the configuration's path."""
    from mailbot.config import DEFAULT_CONFIG
    from tests.support.desk import make_desk

    config_path = root / "config.toml"
    config_path.write_text(DEFAULT_CONFIG, encoding="utf-8")
    ctx = make_desk(root, "2026-11-25T09:00")
    rng = random.Random(3)
    open_statuses = ["complete", "needs_correction", "awaiting_reply"]
    rows = []
    for n in range(1, cases + 1):
        status = rng.choice(open_statuses) if rng.random() < open_share else "closed"
        problems = (
            '[{"field": "事業者名略称", "message": "末尾に「_容」を付けてください。"}]'
            if status == "needs_correction"
            else "[]"
        )
        rows.append(
            (
                n,
                "operator_code_application",
                status,
                f"user{n}@company{n}.example.jp",
                f"申請者{n}",
                f"【容量市場向け事業者コード申請】株式会社{n}",
                f"2026-{rng.randint(4, 11):02d}-{rng.randint(1, 28):02d}T10:00:00+09:00",
                f"2026-12-{rng.randint(1, 28):02d}" if status != "closed" else None,
                problems,
                "2026-11-25T09:00:00+09:00",
            )
        )
    with ctx.store.transaction():
        ctx.store.conn.executemany(
            "INSERT INTO cases (id, procedure, status, sender, sender_name, subject, received_at,"
            " due, problems, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        ctx.store.conn.executemany(
            "INSERT INTO case_search (rowid, subject, sender, company, body, attachments)"
            " VALUES (?, ?, ?, '', ?, '')",
            [(r[0], r[5], f"{r[3]} {r[4]}", "添付の通り申請します。") for r in rows],
        )
    ctx.close()
    return config_path


def web_timings(config_path: Path, repeat: int = 5) -> dict:
    """The desk's queue page and a search, served by the Flask app in this process, logged in
    as a staff member; the best of `repeat` (the first request also warms the templates)."""
    from mailbot.clock import Clock, parse_instant
    from mailbot.config import load_config
    from mailbot.context import Context
    from mailbot.desk.staff import add_staff
    from mailbot.desk.web.app import create_app

    config = load_config(config_path)
    clock = Clock(parse_instant("2026-11-25T09:00"))
    ctx = Context.open(config, clock)
    if ctx.store.staff("bench") is None:
        add_staff(ctx, "bench", "計測", "a long bench password 1234")
    ctx.close()
    client = create_app(config, clock).test_client()
    base = "https://localhost"
    page = client.get("/login", base_url=base).text
    csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    client.post(
        "/login",
        data={"login": "bench", "password": "a long bench password 1234", "csrf": csrf},
        base_url=base,
    )
    out = {}
    for name, path in (("queue", "/cases"), ("search", "/cases?show=all&q=株式会社4242")):
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            response = client.get(path, base_url=base)
            best = min(best, time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code}")
        out[name] = best
    return out


def scale(cases: int) -> dict:
    """`cases` cases: 3 % open (3,000 at 100,000) for `cases --json`, the reminder scan and
    the web desk; a second store with 30 % open (30,000 at 100,000) for the report."""
    from mailbot.desk.jobs import load_schedule, participant_reminders
    from tests.support.desk import make_desk

    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = fill_cases(root, cases, 0.03)
        open_cases = _open_count(root)
        timings["cases_json"], _ = mailbot(config_path, "cases", "--json", now="2026-11-25T09:00")
        timings["report"], _ = mailbot(
            config_path, "report", "--xlsx", str(root / "r.xlsx"), now="2026-11-25T09:00"
        )
        ctx = make_desk(root, "2026-11-25T09:00")
        spec = next(
            s
            for s in load_schedule(ctx.config.rules_dir / "schedule.toml")
            if s.name == "participant_reminders"
        )
        started = time.perf_counter()
        with ctx.store.transaction():
            participant_reminders(ctx, spec, ctx.now())
        timings["reminder_scan"] = time.perf_counter() - started
        ctx.close()
        web = web_timings(config_path)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config_path = fill_cases(root, cases, 0.30)
        report_open = _open_count(root)
        timings["report_30pct"], _ = mailbot(
            config_path, "report", "--xlsx", str(root / "r.xlsx"), now="2026-11-25T09:00"
        )
    return {k: round(v, 2) for k, v in timings.items()} | {
        "cases": cases,
        "open_cases": open_cases,
        "report_30pct_open_cases": report_open,
        "web_queue_ms": round(web["queue"] * 1000, 1),
        "web_search_ms": round(web["search"] * 1000, 1),
    }


def _open_count(root: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(root / "data" / "mailbot.db")
    try:
        return conn.execute("SELECT count(*) FROM cases WHERE status != 'closed'").fetchone()[0]
    finally:
        conn.close()


JIS_BODY = (
    "{co}電力\n代表取締役　{ta}橋太郎　様\n\n"
    + "容量市場向け事業者コードを申請いたします。添付の様式をご確認ください。\n" * 12
    + "{n1}事業者コード申請書\n{n2}需要抑制量調整供給契約書\n{n3}登記事項証明書\n"
    + "参加区分は、安定電源です。ご確認のほど、よろしくお願いいたします。\n" * 12
)
"""A seed-style mail body of 30 lines: Outlook's extension characters where such a mail
carries them (the company and the signer's name, a numbered list of attachments)."""


def iso2022_ratio(repeat: int = 15) -> dict:
    """Decoding ISO-2022-JP with Outlook's extension characters against the same text with
    plain JIS characters in their place: the seed-style body (`JIS_BODY`, 6 extension
    characters in ~1,400), and a dense one (4 on every 40-character line). Best of `repeat`
    rounds of 200 decodes of each text, the texts taking turns within a round so that a
    moment of load falls on all of them alike; `stdlib` is the way extension text went before
    encoding_rs (the stdlib codec with a Python callback at each extension character, still
    taken by damaged text), `bytewise` the way before that."""
    from mailbot.mail.charset import decode_jis, decode_jis_bytewise, decode_jis_stdlib
    from tests.support.jpmail import encode_jis

    line = "{n1}．事業者名称：{co}電力　代表者：{ta}橋太郎　第{roman}期\n"
    ext = {"n1": "①", "n2": "②", "n3": "③", "co": "㈱髙橋", "ta": "髙", "roman": "Ⅲ"}
    plain = {"n1": "1", "n2": "2", "n3": "3", "co": "株式会社高橋", "ta": "高", "roman": "三"}
    texts = {
        "ext": JIS_BODY.format(**ext),
        "plain": JIS_BODY.format(**plain),
        "dense_ext": line.format(**ext) * 40,
        "dense_plain": line.format(**plain) * 40,
    }
    ways = {
        **{name: (decode_jis, text) for name, text in texts.items()},
        "bytewise": (decode_jis_bytewise, texts["ext"]),
        "stdlib_ext": (decode_jis_stdlib, texts["ext"]),
        "stdlib_plain": (decode_jis_stdlib, texts["plain"]),
    }
    encoded = {name: encode_jis(text) for name, (_, text) in ways.items()}
    for name, (decode, text) in ways.items():
        if decode(encoded[name]) != (text, []):
            raise RuntimeError(f"{name}: decoded text differs")
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(repeat):
        for name, (decode, _) in ways.items():
            data = encoded[name]
            started = time.perf_counter()
            for _ in range(200):
                decode(data)
            best[name] = min(best[name], (time.perf_counter() - started) / 200)
    return {
        "ratio": round(best["ext"] / best["plain"], 2),
        "dense_ratio": round(best["dense_ext"] / best["dense_plain"], 2),
        "stdlib_ratio": round(best["stdlib_ext"] / best["stdlib_plain"], 2),
        "stdlib_ext_us": round(best["stdlib_ext"] * 1e6, 1),
        "stdlib_plain_us": round(best["stdlib_plain"] * 1e6, 1),
        "bytewise_ratio": round(best["bytewise"] / best["plain"], 2),
        "plain_us": round(best["plain"] * 1e6, 1),
        "ext_us": round(best["ext"] * 1e6, 1),
    }


def scale_figures(scaled: dict, jis: dict) -> dict:
    """The issue-17 figures, flat in latest.json."""
    return {
        "cases_json_100k_s": scaled["cases_json"],
        "report_30k_s": scaled["report_30pct"],
        "report_30k_open_cases": scaled["report_30pct_open_cases"],
        "web_queue_100k_ms": scaled["web_queue_ms"],
        "web_search_100k_ms": scaled["web_search_ms"],
        "iso2022_ext_vs_plain": jis["ratio"],
        "iso2022": jis,
    }


def scale_rows(result: dict) -> list[tuple[str, object, str]]:
    jis = result["iso2022"]
    return [
        (
            f"report, {result['report_30k_open_cases']:,} open of"
            f" {result['cases_100k_seconds']['cases']:,} (s)",
            result["report_30k_s"],
            "< 3",
        ),
        (
            "web desk at 100,000: queue / search (ms)",
            f"{result['web_queue_100k_ms']} / {result['web_search_100k_ms']}",
            "< 200 / < 300",
        ),
        (
            "ISO-2022-JP with ①㈱髙 vs plain: mail / dense / stdlib way (µs)",
            f"{jis['ratio']} / {jis['dense_ratio']} / {jis['stdlib_ratio']}"
            f" ({jis['ext_us']} vs {jis['plain_us']}; stdlib {jis['stdlib_ext_us']})",
            "≤ 1.0 (mail)",
        ),
    ]


def peer_figures() -> dict | None:
    """The last `bench.peer` run (its own process and venv, minutes long), carried into
    latest.json with its own date so every issue-17 figure is in one file."""
    path = RESULTS / "peer.json"
    if not path.exists():
        return None
    peer = json.loads(path.read_text(encoding="utf-8"))
    keys = ("when", "load_average", "mails", "peer", "mailbot_mails_per_s", "peer_mails_per_s")
    return {k: peer[k] for k in keys if k in peer} | {"ratio_to_peer": peer["ratio_to_peer"]}


def scale_only() -> int:
    """Re-measure the 100,000-case and ISO-2022-JP figures and merge them into latest.json,
    marked with their own time; the throughput figures stay those of the last full run."""
    path = RESULTS / "latest.json"
    result = json.loads(path.read_text(encoding="utf-8"))
    print("scale …", flush=True)
    scaled = scale(100_000)
    jis = iso2022_ratio()
    result["cases_100k_seconds"] = scaled
    result.update(scale_figures(scaled, jis))
    result["scale_when"] = datetime.now().astimezone().isoformat(timespec="seconds")
    for name, value, target in scale_rows(result):
        print(f"{name:<56}  {value!s:<20}  {target}")
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"written: {path}")
    return 0


def drain_only(label: str) -> int:
    """Only the backlog-drain latency (2,000 mails, 50 probes), with the load the machine
    carried, written to drain.json under `label` beside earlier runs; latest.json keeps the
    figures of the last full run."""
    path = RESULTS / "drain.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    load_before = os.getloadavg()
    drain = drain_latency(2000, 50)
    runs[label] = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        **drain,
    }
    print(json.dumps(runs[label], ensure_ascii=False, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"written: {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a sanity check")
    parser.add_argument(
        "--scale-only",
        action="store_true",
        help="only the 100,000-case and ISO-2022-JP figures, merged into latest.json",
    )
    parser.add_argument(
        "--drain-only",
        metavar="LABEL",
        help="only the latency while 2,000 mails drain, into drain.json under LABEL",
    )
    args = parser.parse_args()
    if args.drain_only:
        return drain_only(args.drain_only)
    if args.scale_only:
        return scale_only()
    sizes = [50, 200, 400] if args.quick else [500, 2000, 8000]
    main_size = sizes[1]
    runs = {}
    for size in sizes:
        print(f"throughput: {size} mails …", flush=True)
        runs[size] = throughput(size)
    print("latency …", flush=True)
    lat = latency(20 if args.quick else 200)
    print("latency while a backlog drains …", flush=True)
    drain = drain_latency(200 if args.quick else 2000, 10 if args.quick else 50)
    print("memory with a 20 MB attachment …", flush=True)
    rss_large = large_attachment()
    print("scale …", flush=True)
    scaled = scale(10_000 if args.quick else 100_000)
    jis = iso2022_ratio()
    main_run = runs[main_size]
    result = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "mails": main_size,
        "throughput_mails_per_s": main_run["mails_per_s"],
        "floor_mails_per_s": main_run["floor_mails_per_s"],
        "ratio_to_floor": round(main_run["mails_per_s"] / main_run["floor_mails_per_s"], 2),
        "latency_p50_s": lat["p50_s"],
        "latency_p95_s": lat["p95_s"],
        "latency_p99_s": lat["p99_s"],
        "drain_latency_p50_s": drain["p50_s"],
        "drain_latency_p99_s": drain["p99_s"],
        "peak_rss_mb_drain": drain["peak_rss_mb"],
        "peak_rss_mb_large_attachment": rss_large,
        "peak_rss_mb_batch": main_run["peak_rss_mb"],
        "cases_100k_seconds": scaled,
        **scale_figures(scaled, jis),
        "throughput_by_size": {str(k): v["mails_per_s"] for k, v in runs.items()},
        "ratio_to_floor_by_size": {
            str(k): round(v["mails_per_s"] / v["floor_mails_per_s"], 2) for k, v in runs.items()
        },
        "runs": {str(k): v for k, v in runs.items()},
        "latency": lat,
        "drain_latency": drain,
    }
    rows = [
        ("mails (main run)", main_size, ""),
        ("throughput (mails/s)", result["throughput_mails_per_s"], ""),
        ("floor (mails/s)", result["floor_mails_per_s"], ""),
        ("ratio to floor", result["ratio_to_floor"], "≥ 1.0"),
        (
            "latency p50 / p95 / p99 (s)",
            f"{lat['p50_s']} / {lat['p95_s']} / {lat['p99_s']}",
            "p50 < 0.7, p99 < 1.5",
        ),
        (
            f"latency p50 / p99 while {drain['backlog']:,} drain (s), probes answered",
            f"{drain['p50_s']} / {drain['p99_s']}, {drain['answered_probes']} of {drain['probes']}",
            "p50 ~0.5, p99 < 1",
        ),
        ("peak RSS, daemon over the drain (MB)", drain["peak_rss_mb"], "< 200"),
        ("peak RSS, 20 MB attachment (MB)", rss_large, "< 200"),
        ("peak RSS, batch (MB)", main_run["peak_rss_mb"], "< 200"),
        (
            "cases --json / report / reminder scan (s)",
            " / ".join(str(scaled[k]) for k in ("cases_json", "report", "reminder_scan")),
            "< 1 / – / –",
        ),
        *scale_rows(result),
        (
            "throughput by size (mails/s)",
            ", ".join(f"{k}: {v}" for k, v in result["throughput_by_size"].items()),
            "flat",
        ),
        (
            "ratio to floor by size",
            ", ".join(f"{k}: {v}" for k, v in result["ratio_to_floor_by_size"].items()),
            "≥ 1.0",
        ),
    ]
    peer = peer_figures()
    if peer:
        result["peer"] = peer
        rows.append(("mailbot / django-helpdesk (bench.peer)", f"{peer['ratio_to_peer']} ×", "≥ 3"))
    width = max(len(r[0]) for r in rows)
    for name, value, target in rows:
        print(f"{name:<{width}}  {value!s:<28}  {target}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "quick.json" if args.quick else "latest.json"
    text = json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    (RESULTS / name).write_text(text, encoding="utf-8")
    if not args.quick:
        (RESULTS / f"{datetime.now():%Y-%m-%d}.json").write_text(text, encoding="utf-8")
    print(f"written: {RESULTS / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
