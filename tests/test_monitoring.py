"""Operations can see it (issue 24): /healthz for probes, /metrics for Prometheus, from the web
desk and from `mailbot run` itself; the web desk's access log; `--log-format json`.

Everything runs on a real SQLite file: the counters are read back with Prometheus' own text
parser between two scrapes around a real `run --once` on the bundled samples."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbot.cli import main
from mailbot.clock import Clock, parse_instant
from mailbot.config import DEFAULT_CONFIG, load_config
from mailbot.desk.web.app import create_app
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import free_port
from tests.test_e2e import ROOT, start_run, wait_for_log

NOW = "2026-11-25T10:00:00+09:00"


def _client(now: str = NOW, config: str | None = None):
    return create_app(load_config(config), Clock(parse_instant(now))).test_client()


def _scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain; version=0.0.4")
    values = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _sum(values: dict, name: str) -> float:
    return sum(v for (n, _), v in values.items() if n == name)


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default (Maildir in and out) in an empty folder, read once."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    assert main(["--now", NOW, "run", "--once"]) == 0
    return tmp_path


def test_metrics_parse_and_their_counters_move_with_mail(desk: Path):
    client = _client()
    before = _scrape(client)
    assert before[("mailbot_up", ())] == 1
    assert _sum(before, "mailbot_mails_received_total") == 0

    samples = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    assert main(["--now", NOW, "deliver", *samples]) == 0
    assert main(["--now", NOW, "run", "--once"]) == 0
    after = _scrape(client)

    conn = sqlite3.connect(desk / "data" / "mailbot.db")
    by_box = dict(conn.execute("SELECT mailbox, count(*) FROM messages GROUP BY mailbox"))
    for box, count in by_box.items():
        assert after[("mailbot_mails_received_total", (("mailbox", box),))] == count
    assert _sum(after, "mailbot_mails_received_total") == len(samples)
    assert _sum(after, "mailbot_mails_processed_total") == len(samples)
    outcomes: dict[str, int] = {}
    for (outcome,) in conn.execute("SELECT outcome FROM messages"):
        cut = outcome.split(":", 1)[0]  # "not answered: Auto-Submitted: …" → "not answered"
        outcomes[cut] = outcomes.get(cut, 0) + 1
    assert "not answered" in outcomes and "needs_correction" in outcomes
    for outcome, count in outcomes.items():
        assert after[("mailbot_mails_processed_total", (("outcome", outcome),))] == count
    quarantined = conn.execute(
        "SELECT count(*) FROM messages WHERE state = 'quarantined'"
    ).fetchone()[0]
    assert after[("mailbot_mails_quarantined_total", ())] == quarantined
    sent_files = len(list((desk / "data" / "outbox" / "new").iterdir()))
    assert sent_files > 0
    assert after[("mailbot_replies_total", (("result", "sent"),))] == sent_files
    assert after[("mailbot_replies_total", (("result", "failed"),))] == 0
    open_cases = dict(
        conn.execute(
            "SELECT status, count(*) FROM cases WHERE status NOT IN ('closed', 'ignored')"
            " GROUP BY status"
        )
    )
    for status, count in open_cases.items():
        assert after[("mailbot_cases_open", (("status", status),))] == count
    assert _sum(after, "mailbot_cases_open") == sum(open_cases.values())
    assert after[("mailbot_outbox_due", ())] == 0
    assert after[("mailbot_oldest_unprocessed_mail_age_seconds", ())] == 0
    for box in by_box:
        assert after[("mailbot_mailbox_unreadable_seconds", (("mailbox", box),))] == 0
        assert ("mailbot_mailbox_last_read_age_seconds", (("mailbox", box),)) in after

    # a second run on the same mail moves no counter
    assert main(["--now", NOW, "run", "--once"]) == 0
    again = _scrape(client)
    for name in ("mailbot_mails_received_total", "mailbot_replies_total"):
        assert _sum(again, name) == _sum(after, name)


def test_metrics_gauges_name_overdue_cases_and_waiting_mail(desk: Path):
    from mailbot.store import Store

    raw = (SAMPLES_DIR / "01_operator_code_complete.eml").read_bytes()
    store = Store(desk / "data" / "mailbot.db")
    store.save_raw(
        "code@occto.or.jp", [("maildir:waiting", raw, parse_instant(NOW))], parse_instant(NOW)
    )
    store.close()
    waiting = _scrape(_client("2026-11-25T10:30:00+09:00"))
    assert waiting[("mailbot_oldest_unprocessed_mail_age_seconds", ())] == pytest.approx(
        1800, abs=5
    )
    assert main(["--now", NOW, "run", "--once"]) == 0
    assert _scrape(_client())[("mailbot_cases_overdue", ())] == 0
    month = _scrape(_client("2026-12-25T10:00:00+09:00"))
    assert month[("mailbot_cases_overdue", ())] == 1


@pytest.mark.parametrize(
    ("remote", "headers", "status"),
    [
        ("127.0.0.1", {}, 200),
        ("::1", {}, 200),
        ("203.0.113.5", {}, 403),
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.5"}, 403),  # through a proxy
        ("127.0.0.1", {"Forwarded": "for=203.0.113.5"}, 403),
    ],
)
def test_metrics_answer_loopback_only_by_default(desk: Path, remote, headers, status):
    response = _client().get("/metrics", environ_base={"REMOTE_ADDR": remote}, headers=headers)
    assert response.status_code == status


def test_metrics_take_a_bearer_token_from_a_file_or_the_environment(
    desk: Path, monkeypatch: pytest.MonkeyPatch
):
    (desk / "token").write_text("s3cret-token\n", encoding="utf-8")
    config = desk / "config.toml"

    for key, setup in (
        ('metrics_token_file = "token"', lambda: None),
        (
            'metrics_token_env = "MAILBOT_METRICS_TOKEN"',
            lambda: monkeypatch.setenv("MAILBOT_METRICS_TOKEN", "s3cret-token"),
        ),
    ):
        setup()
        config.write_text(
            DEFAULT_CONFIG + f"\n[monitoring]\n{key}\ntrusted_networks = []\n", encoding="utf-8"
        )
        client = _client(config=str(config))
        outside = {"REMOTE_ADDR": "203.0.113.5"}
        refused = client.get("/metrics", environ_base=outside)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        wrong = client.get(
            "/metrics", environ_base=outside, headers={"Authorization": "Bearer guess"}
        )
        assert wrong.status_code == 401
        assert client.get("/metrics").status_code == 401  # loopback is not trusted here
        right = _scrape(
            client, environ_base=outside, headers={"Authorization": "Bearer s3cret-token"}
        )
        assert right[("mailbot_up", ())] == 1


def test_healthz_answers_without_a_session_200_when_read_recently_503_when_not(desk: Path):
    response = _client().get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["database"] == {"ok": True}
    assert [b["address"] for b in body["mailboxes"]] == [
        "code@occto.or.jp",
        "youryou_rikuase_long@occto.or.jp",
    ]
    assert all(b["ok"] and b["last_read_age_seconds"] is not None for b in body["mailboxes"])
    assert "Set-Cookie" not in response.headers

    stale = _client("2026-11-25T10:16:00+09:00").get("/healthz")  # no read for 16 minutes
    assert stale.status_code == 503
    assert stale.get_json()["problems"] == [
        "mailbox code@occto.or.jp not read",
        "mailbox youryou_rikuase_long@occto.or.jp not read",
    ]
    assert _client().head("/healthz").status_code == 200


def test_healthz_fails_while_a_reply_has_been_due_too_long(desk: Path):
    conn = sqlite3.connect(desk / "data" / "mailbot.db")
    with conn:
        conn.execute(
            "INSERT INTO outbox (kind, message_id, recipient, subject, raw, created_at, send_at)"
            " VALUES ('receipt', '<x@occto.or.jp>', 'a@example.jp', 's', x'00', ?, ?)",
            ("2026-11-25T09:00:00+09:00", "2026-11-25T09:00:00+09:00"),
        )
    body = _client().get("/healthz").get_json()
    assert body["status"] == "fail" and body["problems"] == ["replies due and not sent"]
    assert body["outbox"]["due"] == 1 and body["outbox"]["oldest_due_age_seconds"] == 3600


def test_healthz_says_so_when_the_database_cannot_be_read(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    response = _client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["database"] == {"ok": False}
    assert "database unreadable" in response.get_json()["problems"]


def test_the_web_desk_logs_one_access_line_per_request_without_secrets(desk: Path, caplog):
    client = _client()
    client.set_cookie("mailbot_session", "cookie-secret")
    with caplog.at_level(logging.INFO, logger="mailbot.access"):
        client.get("/cases?token=query-secret")
        client.get("/healthz")
    lines = [r for r in caplog.records if r.name == "mailbot.access"]
    assert [r.fields["path"] for r in lines] == ["/cases", "/healthz"]
    assert [r.fields["status"] for r in lines] == [303, 200]
    assert lines[0].fields["method"] == "GET" and lines[0].fields["user"] == "-"
    text = "\n".join(r.getMessage() for r in lines)
    assert "query-secret" not in text and "cookie-secret" not in text
    assert text.startswith("GET /cases 303 ")


def test_log_format_json_writes_one_object_a_line_with_the_text_fields(desk: Path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    assert subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--now",
            NOW,
            "deliver",
            *map(str, SAMPLES_DIR.glob("0[1-2]*.eml")),
        ],
        cwd=desk,
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--now",
            NOW,
            "--log-format",
            "json",
            "-v",
            "run",
            "--once",
        ],
        cwd=desk,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    lines = done.stderr.splitlines()
    assert lines
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    assert any(r["message"].startswith("mail key=maildir:") for r in records)
    text = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailbot",
            "--now",
            NOW,
            "-v",
            "run",
            "--once",
            "--log-format",
            "text",
        ],
        cwd=desk,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert text.returncode == 0


def test_mailbot_run_serves_healthz_and_metrics_itself(tmp_path: Path):
    port = free_port()
    config = tmp_path / "config.toml"

    config.write_text(
        DEFAULT_CONFIG + f'\n[monitoring]\nlisten = "127.0.0.1:{port}"\n', encoding="utf-8"
    )
    log = tmp_path / "run.log"
    proc = start_run(config, log)
    try:
        wait_for_log(log, f"serving /healthz and /metrics on http://127.0.0.1:{port}/")
        wait_for_log(log, "running on 2 mailbox(es)")
        body = None
        for _ in range(200):  # the watchers record their first read within moments
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    body = json.load(r)
                    break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                time.sleep(0.05)
        assert body is not None and body["status"] == "ok", log.read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            names = {f.name for f in text_string_to_metric_families(r.read().decode())}
        assert {"mailbot_up", "mailbot_mails_received", "mailbot_cases_open"} <= names
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "GET /healthz 200" in log.read_text()
