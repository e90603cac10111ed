"""`mailbot doctor` and `mailbot backup` against real servers and a real database."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import time
from datetime import datetime
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import TEMPLATES_DIR
from mailbot.doctor import rules_files
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import Dovecot, SmtpCapture, write_desk_config


def config(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> str:
    return str(write_desk_config(tmp_path, dovecot, smtp))


def test_doctor_on_a_healthy_desk_and_with_the_smtp_server_down(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys: pytest.CaptureFixture
):
    cfg = config(tmp_path, dovecot, smtp_server)
    dovecot.append("code", (SAMPLES_DIR / "05_question.eml").read_bytes())
    assert main(["--config", cfg, "cases"]) == 0  # the desk's database exists
    assert main(["--config", cfg, "doctor"]) == 0
    out = capsys.readouterr().out
    assert "mailbox code@occto.or.jp\tok\timap 127.0.0.1" in out and "1 waiting" in out
    assert "rules/market.toml\twarn\tEXAMPLE" in out
    assert "database integrity\tok" in out
    smtp_server.stop()
    assert main(["--config", cfg, "doctor"]) == 1
    assert "outgoing\tFAIL" in capsys.readouterr().out


def test_backup_is_a_consistent_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    assert main(["--now", "2026-11-25T10:00", "ingest", *files]) == 0
    assert main(["backup", "copy.db"]) == 0
    assert "integrity ok" in capsys.readouterr().out
    original = sqlite3.connect(tmp_path / "data" / "mailbot.db")
    copy = sqlite3.connect(tmp_path / "copy.db")
    for table in ("cases", "messages", "outbox", "events"):
        query = f"SELECT count(*) FROM {table}"
        assert copy.execute(query).fetchone() == original.execute(query).fetchone()
    assert main(["backup", "copy.db"]) != 0  # never overwrites


DESK = """
[storage]
database = "{database}"

[[mailboxes]]
address = "code@occto.or.jp"
backend = "imap"
host = "imap.desk.example"
username = "code"
password_env = "MAILBOT_TEST_UNSET_PASSWORD"

[[mailboxes]]
address = "youryou_rikuase_long@occto.or.jp"
backend = "maildir"
path = "inbox/long"

[outgoing]
backend = "smtp"
host = "smtp.desk.example"
{extra}
"""


def write_config(tmp_path: Path, database: str = "data/mailbot.db", extra: str = "") -> str:
    path = tmp_path / "config.toml"
    path.write_text(DESK.format(database=database, extra=extra), encoding="utf-8")
    return str(path)


def doctor_rows(out: str) -> dict[str, tuple[str, str]]:
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    return {name: (status, detail) for name, status, detail in rows[1:]}


def test_doctor_creates_nothing_at_a_mistyped_database_path(tmp_path: Path, capsys):
    cfg = write_config(tmp_path, database="dta/mailbot.db")
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    rows = doctor_rows(capsys.readouterr().out)
    assert rows["database"][0] == "warn" and "dta/mailbot.db" in rows["database"][1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_doctor_warns_when_no_authserv_id_is_configured(tmp_path: Path, capsys):
    """Unset, no Authentication-Results header counts as our MTA's and no pass vouches."""
    assert main(["--config", write_config(tmp_path), "doctor", "--offline"]) == 0
    status, detail = doctor_rows(capsys.readouterr().out)["trust: authserv_ids"]
    assert status == "warn" and "[trust] authserv_ids is not set" in detail
    extra = '[trust]\nauthserv_ids = ["mx.occto.or.jp"]\n'
    assert main(["--config", write_config(tmp_path, extra=extra), "doctor", "--offline"]) == 0
    assert doctor_rows(capsys.readouterr().out)["trust: authserv_ids"] == ("ok", "mx.occto.or.jp")


def test_doctor_opens_the_database_read_only(tmp_path: Path, capsys):
    cfg = write_config(tmp_path)
    assert main(["--config", cfg, "cases"]) == 0
    db = tmp_path / "data" / "mailbot.db"
    before = (db.stat().st_mtime_ns, db.read_bytes())
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    assert doctor_rows(capsys.readouterr().out)["database integrity"][0] == "ok"
    assert (db.stat().st_mtime_ns, db.read_bytes()) == before


def test_doctor_fails_per_row_and_resolves_each_host_once_with_a_short_timeout(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    """Fault injection: a resolver that never answers (an unknown host cost ~33 s of retries)."""
    looked_up: list[str] = []

    def slow_resolver(host, *args, **kwargs):
        looked_up.append(host)
        time.sleep(30)

    monkeypatch.setattr(socket, "getaddrinfo", slow_resolver)
    monkeypatch.setattr("mailbot.doctor.RESOLVE_TIMEOUT", 0.5)
    cfg = write_config(tmp_path, extra='password_env = "MAILBOT_TEST_UNSET_SMTP"')
    started = time.monotonic()
    assert main(["--config", cfg, "doctor"]) == 1
    assert time.monotonic() - started < 5
    rows = doctor_rows(capsys.readouterr().out)
    imap = rows["mailbox code@occto.or.jp"]
    assert imap[0] == "FAIL" and "MAILBOT_TEST_UNSET_PASSWORD is not set" in imap[1]
    assert rows["mailbox youryou_rikuase_long@occto.or.jp"][0] == "warn"
    assert (
        rows["outgoing"][0] == "FAIL"
        and "MAILBOT_TEST_UNSET_SMTP is not set" in rows["outgoing"][1]
    )
    assert rows["rules/procedures.toml"][0] == "ok"  # the other rows still ran
    monkeypatch.setenv("MAILBOT_TEST_UNSET_PASSWORD", "x")
    monkeypatch.setenv("MAILBOT_TEST_UNSET_SMTP", "x")
    assert main(["--config", cfg, "doctor"]) == 1
    rows = doctor_rows(capsys.readouterr().out)
    assert "no answer from DNS" in rows["mailbox code@occto.or.jp"][1]
    assert "no answer from DNS" in rows["outgoing"][1]
    assert looked_up == ["imap.desk.example", "smtp.desk.example"]
    looked_up.clear()
    same_host = tmp_path / "same-host.toml"
    same_host.write_text(
        DESK.format(database="data/mailbot.db", extra="").replace(
            "smtp.desk.example", "imap.desk.example"
        ),
        encoding="utf-8",
    )
    assert main(["--config", str(same_host), "doctor"]) == 1
    assert looked_up == ["imap.desk.example"]  # once for both servers


def test_doctor_fails_on_a_wrong_templates_path_or_a_broken_template(tmp_path: Path, capsys):
    cfg = write_config(tmp_path, extra='[paths]\ntemplates = "templtes"')
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    assert doctor_rows(capsys.readouterr().out)["templates"][0] == "FAIL"
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, copy)
    receipt = copy / "mail" / "receipt.txt.j2"
    receipt.write_text(receipt.read_text(encoding="utf-8") + "{% if %}", encoding="utf-8")
    (copy / "mail" / "rejection.txt.j2").unlink()
    cfg = write_config(tmp_path, extra='[paths]\ntemplates = "templates"')
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "FAIL" and "mail/receipt.txt.j2: line" in detail
    assert "mail/rejection.txt.j2: missing" in detail


def test_doctor_renders_every_mail_template_of_a_deployment(tmp_path: Path, capsys):
    """A template that compiles can still fail when a mail needs it: a name the code never
    passes, a filter that fails on the real value. Doctor renders each one once."""
    folder = tmp_path / "desk"
    assert main(["init", str(folder)]) == 0
    cfg = str(folder / "config.toml")
    capsys.readouterr()
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "ok" and "26 mails render" in detail
    mail = folder / "templates" / "mail"
    receipt = mail / "receipt.txt.j2"
    text = receipt.read_text(encoding="utf-8")
    receipt.write_text(text.replace("{% endblock %}", "{{ case.subject }}{% endblock %}", 1))
    assert main(["--config", cfg, "doctor", "--offline"]) == 0  # a name the code does pass
    capsys.readouterr()
    receipt.write_text(text.replace("{% endblock %}", "{{ case.no_such_field }}{% endblock %}", 1))
    correction = mail / "correction.txt.j2"
    correction.write_text(
        correction.read_text(encoding="utf-8").replace(
            "{% endblock %}", "{{ case_number | jdate }}{% endblock %}", 1
        )
    )
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "FAIL"
    assert "mail/receipt.txt.j2: does not render:" in detail and "no_such_field" in detail
    assert "mail/correction.txt.j2: does not render: ValueError" in detail


def test_a_wrong_rules_path_fails_each_rules_row_and_the_rest_still_runs(tmp_path: Path, capsys):
    cfg = write_config(tmp_path, extra='[paths]\nrules = "rulez"')
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    rows = doctor_rows(capsys.readouterr().out)
    rules_rows = {name: row for name, row in rows.items() if name.startswith("rules/")}
    assert len(rules_rows) == len(rules_files()) == 12
    assert all(status == "FAIL" for status, _ in rules_rows.values())
    assert "rulez/calendar.toml: not found" in rules_rows["rules/calendar.toml"][1]
    assert rows["templates"][0] == "ok"
    assert main(["--config", cfg, "cases"]) == 3  # every other command stops in one line
    assert capsys.readouterr().err.count("\n") == 1


def test_doctor_checks_the_web_pages_the_desk_would_load(tmp_path: Path, capsys):
    """The desk loads a page from the deployment's templates folder when it has one, else the
    shipped copy: a folder made before the desk existed (no web/) is sound, a broken page of
    its own is not."""
    folder = tmp_path / "desk"
    assert main(["init", str(folder)]) == 0
    cfg = str(folder / "config.toml")
    web = folder / "templates" / "web"
    shutil.rmtree(web)
    capsys.readouterr()
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "ok" and "7 web pages compile (0 of this folder's own)" in detail
    web.mkdir()
    (web / "case.html.j2").write_text("{% extends 'web/base.html.j2' %}{% block x %}", "utf-8")
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "FAIL" and "web/case.html.j2: line 1:" in detail
    assert str(web / "case.html.j2") in detail
    shutil.copy(TEMPLATES_DIR / "web" / "case.html.j2", web / "case.html.j2")
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert "7 web pages compile (1 of this folder's own)" in detail


def test_doctor_names_replies_a_stopped_run_left_in_the_send_journal(tmp_path: Path, capsys):
    """They show as due in the database until a run records them; deleting the journal
    then would send them again, so the doctor says so."""
    from mailbot.store.journal import SendJournal

    cfg = write_config(tmp_path)
    assert main(["--config", cfg, "cases"]) == 0
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    assert doctor_rows(capsys.readouterr().out)["send journal"] == ("ok", "empty")
    db = tmp_path / "data" / "mailbot.db"
    with SendJournal(db) as journal:
        journal.record(1, "<mailbot.1.x@occto.or.jp>", datetime(2026, 11, 25, 10, 0))
    assert main(["--config", cfg, "doctor", "--offline"]) == 0
    status, detail = doctor_rows(capsys.readouterr().out)["send journal"]
    assert status == "warn" and detail.startswith("1 replies") and "do not delete" in detail


def test_doctor_fails_on_a_topic_without_its_paragraph(tmp_path: Path, capsys):
    """The topic reply includes mail/_topic_<id>.txt.j2 for each topic of
    rules/longterm_topics.toml; a topic staff add without one would be answered with its
    heading alone."""
    folder = tmp_path / "desk"
    assert main(["init", str(folder)]) == 0
    cfg = str(folder / "config.toml")
    topics = folder / "rules" / "longterm_topics.toml"
    topics.write_text(
        topics.read_text(encoding="utf-8")
        + '\n[[topics]]\nid = "contact_change"\nname = "連絡先の変更"\n'
        'all_of = [["連絡先"], ["変更"]]\n',
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["--config", cfg, "doctor", "--offline"]) == 1
    status, detail = doctor_rows(capsys.readouterr().out)["templates"]
    assert status == "FAIL" and "mail/_topic_contact_change.txt.j2: missing" in detail
