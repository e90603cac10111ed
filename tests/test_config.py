"""The configuration is checked against one schema: a typo, a wrong type or a value out of range
is one line on stderr and exit 3, never silently ignored or a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import DEFAULT_CONFIG, Limits, parse_config

MAILDIR_BOX = """
[[mailboxes]]
address = "code@occto.or.jp"
backend = "maildir"
path = "inbox/code"
"""
OUTGOING = """
[outgoing]
backend = "maildir"
path = "outbox"
"""
IMAP_BOX = """
[[mailboxes]]
address = "code@occto.or.jp"
backend = "imap"
host = "imap.example.jp"
username = "code"
"""


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            MAILDIR_BOX + OUTGOING + '[storage]\ndatabse = "x.db"\n',
            "storage.databse: unknown key; did you mean 'database'?",
        ),
        (
            IMAP_BOX + 'secruity = "ssl"\n' + OUTGOING,
            "mailboxes[0].secruity: unknown key; did you mean 'security'?",
        ),
        (
            MAILDIR_BOX + OUTGOING + 'fromname = "受付"\n',
            "outgoing.fromname: unknown key; did you mean 'from_name'?",
        ),
        (
            MAILDIR_BOX + OUTGOING + '[stafff]\naddresses = ["a@example.jp"]\n',
            "stafff: unknown table; did you mean 'staff'?",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[web]\nprot = 8080\n",
            "web.prot: unknown key; did you mean 'port'?",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[web]\nport = 70000\n",
            "web.port: must be a port number (1-65535), got 70000",
        ),
        (
            MAILDIR_BOX + OUTGOING + '[web]\nsecure_cookies = "no"\n',
            "web.secure_cookies: must be true or false, got 'no'",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[limits]\nmax_message_bytes = true\n",
            "limits.max_message_bytes: must be a whole number above 0, got true",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[limits]\nmax_attachment_bytes = -5\n",
            "limits.max_attachment_bytes: must be a whole number above 0, got -5",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[limits]\nauto_replies_per_sender_per_day = 0\n",
            "limits.auto_replies_per_sender_per_day: must be a whole number above 0, got 0",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[web]\nconnections_per_client = 0\n",
            "web.connections_per_client: must be a whole number above 0, got 0",
        ),
        (
            "limits = [1, 2]\n" + MAILDIR_BOX + OUTGOING,
            "limits: must be a table ([limits]), got [1, 2]",
        ),
        ("storage = 5\n" + MAILDIR_BOX + OUTGOING, "storage: must be a table ([storage]), got 5"),
        (
            "mailboxes = 5\n" + OUTGOING,
            "mailboxes: must be an array of tables ([[mailboxes]]), got 5",
        ),
        (
            IMAP_BOX + "port = 99999\n" + OUTGOING,
            "mailboxes[0].port: must be a port number (1-65535), got 99999",
        ),
        (
            IMAP_BOX + "port = true\n" + OUTGOING,
            "mailboxes[0].port: must be a port number (1-65535), got true",
        ),
        (
            MAILDIR_BOX + "poll_interval = -1\n" + OUTGOING,
            "mailboxes[0].poll_interval: must be a number above 0, got -1",
        ),
        (
            MAILDIR_BOX + OUTGOING + "timeout = 0\n",
            "outgoing.timeout: must be a number above 0, got 0",
        ),
        (
            MAILDIR_BOX + "poll_interval = inf\n" + OUTGOING,
            "mailboxes[0].poll_interval: must be a number above 0, got inf",
        ),
        (
            MAILDIR_BOX + OUTGOING + '[staff]\naddresses = "desk@example.jp"\n',
            "staff.addresses: must be a list of strings, got 'desk@example.jp'",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[paths]\nrules = 1\n",
            "paths.rules: must be a string, got 1",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[paths]\nrule = 'r'\n",
            "paths.rule: unknown key; did you mean 'rules'?",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[whatever]\n",
            "whatever: unknown table (known: storage, mailboxes, outgoing, staff, limits, paths, web, trust, monitoring)",
        ),
        (
            MAILDIR_BOX + 'host = "imap.example.jp"\n' + OUTGOING,
            'mailboxes[0].host: not used with backend = "maildir"',
        ),
        (
            MAILDIR_BOX + OUTGOING + 'password_env = "MAILBOT_SMTP_PASSWORD"\n',
            'outgoing.password_env: not used with backend = "maildir"',
        ),
        (MAILDIR_BOX + "[outgoing\n", "not valid TOML"),
        (
            MAILDIR_BOX + '[outgoing]\nbackend = "smtp"\nhost = "h"\nsecurity = "tls"\n',
            "outgoing.security: must be one of ssl, starttls, none",
        ),
        (
            MAILDIR_BOX + OUTGOING + '[monitoring]\nlisten = "9108"\n',
            "monitoring.listen: must be HOST:PORT, got '9108'",
        ),
        (
            MAILDIR_BOX + OUTGOING + '[monitoring]\ntrusted_networks = ["intranet"]\n',
            "monitoring.trusted_networks: 'intranet' is not an IP address or network",
        ),
        (
            MAILDIR_BOX
            + OUTGOING
            + '[monitoring]\nmetrics_token_env = "T"\nmetrics_token_file = "t"\n',
            "monitoring: metrics_token_env and metrics_token_file: give one",
        ),
        (
            MAILDIR_BOX + OUTGOING + "[monitoring]\nmailbox_alert_minutes = 0\n",
            "monitoring.mailbox_alert_minutes: must be a number above 0, got 0",
        ),
    ],
)
def test_a_bad_config_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture, config: str, expected: str
):
    path = tmp_path / "config.toml"
    path.write_text(config, encoding="utf-8")
    assert main(["--config", str(path), "cases"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("mailbot: ")
    assert expected in captured.err
    assert "Traceback" not in captured.err
    assert not (tmp_path / "mailbot.db").exists() and not (tmp_path / "data").exists()


def test_a_missing_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["--config", str(tmp_path / "nope.toml"), "cases"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.toml: cannot read" in err


def test_the_example_and_the_embedded_default_pass_the_schema(tmp_path: Path):
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    config = parse_config(example.read_text(encoding="utf-8"), "example", tmp_path)
    assert config.limits == Limits()
    assert parse_config(DEFAULT_CONFIG, "default", tmp_path).outgoing.backend == "maildir"


def test_a_missing_password_env_stops_only_what_logs_in(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MAILBOT_TEST_NO_SUCH_PASSWORD", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(
        IMAP_BOX + 'password_env = "MAILBOT_TEST_NO_SUCH_PASSWORD"\n' + OUTGOING, encoding="utf-8"
    )
    assert main(["--config", str(path), "cases"]) == 0
    capsys.readouterr()
    assert main(["--config", str(path), "run", "--once"]) == 3
    err = capsys.readouterr().err
    assert err == (
        "mailbot: mailbox code@occto.or.jp: password_env: environment variable"
        " MAILBOT_TEST_NO_SUCH_PASSWORD is not set\n"
    )


def test_every_monitoring_key_is_documented_and_every_documented_one_exists():
    """README "Configuration" and config.example.toml name each `[monitoring]` key of the
    schema, and nothing else (a documented key the schema refuses would be exit 3)."""
    import re

    from mailbot.config import SCHEMA

    root = Path(__file__).resolve().parent.parent
    keys = set(SCHEMA["monitoring"][1])
    lines = root.joinpath("README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| `[monitoring]` |")))
    end = start + 1
    while lines[end].startswith("| |"):
        end += 1
    rows = lines[start:end]
    documented = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[2])}
    assert documented == keys
    example = root.joinpath("config.example.toml").read_text(encoding="utf-8")
    section = example.split("\n[monitoring]\n", 1)[1].split("\n[", 1)[0]
    in_example = set(re.findall(r"^#? ?([a-z_]+) =", section, flags=re.MULTILINE))
    assert in_example == keys
    assert parse_config(example, "example", root).monitoring.mailbox_alert_minutes == 15
