"""mailbot against django-helpdesk's `get_email` on the same mails, one Dovecot, one run
(issue 17: mailbot ≥ 3× the peer).

    .venv/bin/python -m bench.peer            # 2,000 mails
    .venv/bin/python -m bench.peer 500

django-helpdesk is installed from PyPI into bench/.peer-venv (made on first use, never the
project's venv). Both desks get the same bench/corpus.py mails in mailboxes of their own on one
private Dovecot, and both answer through the same aiosmtpd: mailbot `run --once` (checks every
form, stores every case, sends every receipt), then `django-admin get_email` (one ticket per
mail, the attachments saved, the new-ticket mail to the submitter). Each is timed as a whole
process from start to exit. Prints a table and writes bench/results/peer.json. The cores may
be shared with other work: compare the ratio inside one run, not seconds across runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.run import LIMITS, RESULTS, ROOT, machine, mailbot, replies
from tests.support.servers import PASSWORD, Dovecot, SmtpCapture, write_desk_config

HERE = ROOT / "bench"
PEER_VENV = HERE / ".peer-venv"
PEER_PACKAGE = "django-helpdesk==2.6.1"
PEER_USER = "peer"
NOW = "2026-11-25T10:00:00+09:00"


def peer_python() -> Path:
    """bench/.peer-venv's Python, with django-helpdesk installed into it on first use."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import helpdesk"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", PEER_PACKAGE],
            check=True,
        )
    return python


def peer_env(root: Path, smtp: SmtpCapture) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PYTHONPATH": str(HERE),
        "DJANGO_SETTINGS_MODULE": "peer_settings",
        "PEER_DIR": str(root),
        "PEER_SMTP_PORT": str(smtp.port),
    }


def append(dovecot: Dovecot, user: str, raws: list[bytes]) -> None:
    client = dovecot.client(user)
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()


def measure(count: int) -> dict:
    from bench.corpus import mails

    python = peer_python()
    raws = list(mails(count))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dovecot = Dovecot(users=("code", "youryou", PEER_USER)).start()
        smtp = SmtpCapture().start()
        try:
            config = write_desk_config(root, dovecot, smtp, poll_interval=600.0, extra=LIMITS)
            append(dovecot, "code", raws)
            append(dovecot, PEER_USER, raws)
            env = peer_env(root, smtp)
            helper = str(HERE / "peer_helpdesk.py")
            subprocess.run(
                [str(python), helper, "setup", str(dovecot.port), PEER_USER, PASSWORD],
                check=True,
                env=env,
            )

            mailbot_s, rss = mailbot(config, "run", "--once", now=NOW)
            mailbot_replies = len(replies(smtp))
            smtp.clear()

            started = time.perf_counter()
            subprocess.run(
                [str(python), "-m", "django", "get_email", "--quiet"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
            )
            peer_s = time.perf_counter() - started
            peer_replies = len(smtp.messages)
            counts = json.loads(
                subprocess.run(
                    [str(python), helper, "count"],
                    check=True,
                    env=env,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            left = dovecot.count(PEER_USER)
        finally:
            smtp.stop()
            dovecot.close()
    if mailbot_replies < count * 0.95:
        raise RuntimeError(f"mailbot answered only {mailbot_replies} of {count} mails")
    if counts["tickets"] < count * 0.95:
        raise RuntimeError(f"django-helpdesk made only {counts['tickets']} of {count} tickets")
    return {
        "mails": count,
        "mb": round(sum(len(r) for r in raws) / 1e6, 1),
        "mailbot_seconds": round(mailbot_s, 2),
        "mailbot_mails_per_s": round(count / mailbot_s, 1),
        "mailbot_replies": mailbot_replies,
        "mailbot_peak_rss_mb": round(rss, 1),
        "peer": PEER_PACKAGE,
        "peer_seconds": round(peer_s, 2),
        "peer_mails_per_s": round(count / peer_s, 1),
        "peer_replies": peer_replies,
        "peer_left_in_mailbox": left,
        **{f"peer_{k}": v for k, v in counts.items()},
        "ratio_to_peer": round(peer_s / mailbot_s, 2),
    }


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(f"mailbot and django-helpdesk, {count} mails …", flush=True)
    result = measure(count)
    rows = [
        ("mails (MB)", f"{result['mails']} ({result['mb']} MB)", ""),
        (
            "mailbot run --once (s, mails/s)",
            f"{result['mailbot_seconds']}, {result['mailbot_mails_per_s']}",
            f"{result['mailbot_replies']} replies",
        ),
        (
            "django-helpdesk get_email (s, mails/s)",
            f"{result['peer_seconds']}, {result['peer_mails_per_s']}",
            f"{result['peer_tickets']} tickets, {result['peer_replies']} replies",
        ),
        ("mailbot / django-helpdesk", f"{result['ratio_to_peer']} ×", "≥ 3 (issue 17)"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:<16}  {note}")
    out = {
        "when": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": os.getloadavg(),
        **result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "peer.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
