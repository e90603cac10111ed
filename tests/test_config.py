"""The configuration is checked against one schema: a typo, a wrong type or a value out of range
is one line on stderr and exit 3, never silently ignored or a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import DEFAULT_CONFIG, SCHEMA, SUBTABLES, Limits, parse_config

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


SMTP = """
[outgoing]
backend = "smtp"
host = "smtp.example.jp"
username = "code@occto.or.jp"
password_env = "MAILBOT_SMTP_PASSWORD"
"""
MS = '\n[mailboxes.oauth2]\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\n'


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            IMAP_BOX + 'auth = "oauth2"\n' + OUTGOING,
            'mailboxes[0].oauth2: is required with auth = "oauth2"',
        ),
        (
            IMAP_BOX
            + 'auth = "oauth2"\npassword_env = "X"\n'
            + MS
            + 'client_secret_env = "S"\n'
            + OUTGOING,
            'mailboxes[0].password_env: not used with auth = "oauth2"',
        ),
        (
            IMAP_BOX + MS + 'client_secret_env = "S"\n' + OUTGOING,
            'mailboxes[0].oauth2: is used only with auth = "oauth2"',
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n' + MS + 'client_secret = "inline"\n' + OUTGOING,
            "mailboxes[0].oauth2.client_secret: unknown key; did you mean 'client_secret_env'?",
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n' + MS + OUTGOING,
            "mailboxes[0].oauth2: give exactly one of client_secret_env, client_secret_file,"
            " certificate_file",
        ),
        (
            IMAP_BOX
            + 'auth = "oauth2"\n'
            + MS
            + 'client_secret_env = "S"\ncertificate_file = "app.pem"\n'
            + OUTGOING,
            "mailboxes[0].oauth2: give exactly one of client_secret_env",
        ),
        (
            IMAP_BOX
            + 'auth = "oauth2"\n'
            + MS
            + 'client_secret_env = "S"\nsubject = "x"\n'
            + OUTGOING,
            'mailboxes[0].oauth2.subject: not used with provider = "microsoft"',
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n[mailboxes.oauth2]\nprovider = "google"\n'
            'client_id = "c"\nclient_secret_env = "S"\n' + OUTGOING,
            "mailboxes[0].oauth2: give exactly one of refresh_token_env, refresh_token_file",
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n[mailboxes.oauth2]\nprovider = "command"\n'
            "token_command = []\n" + OUTGOING,
            "mailboxes[0].oauth2.token_command: names no program",
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n[mailboxes.oauth2]\nprovider = "okta"\n' + OUTGOING,
            "mailboxes[0].oauth2.provider: must be one of microsoft, google, command",
        ),
        (
            IMAP_BOX + 'auth = "oauth2"\n[mailboxes.oauth2]\nprovider = "command"\n'
            'token_command = ["t"]\nmechanism = "plain"\n' + OUTGOING,
            "mailboxes[0].oauth2.mechanism: must be one of xoauth2, oauthbearer",
        ),
        (
            IMAP_BOX + 'auth = "none"\n' + OUTGOING,
            'mailboxes[0].auth: an IMAP mailbox logs in: "password" or "oauth2"',
        ),
        (
            MAILDIR_BOX + '[mailboxes.outgoing]\npassword_env = "P"\n' + OUTGOING,
            'mailboxes[0].outgoing: is used with [outgoing] backend = "smtp"',
        ),
        (
            MAILDIR_BOX + '[mailboxes.outgoing]\nusername = "long@occto.or.jp"\n' + SMTP,
            "mailboxes[0].outgoing.password_env: is required: this login's own password",
        ),
        (
            MAILDIR_BOX + '[mailboxes.outgoing]\nauth = "oauth2"\n' + SMTP,
            'mailboxes[0].outgoing.oauth2: is required with auth = "oauth2"',
        ),
        (
            MAILDIR_BOX + '[mailboxes.outgoing]\nfolder = "INBOX"\n' + SMTP,
            "mailboxes[0].outgoing.folder: unknown key",
        ),
        (
            MAILDIR_BOX + 'ca_file = "ca.pem"\n' + OUTGOING,
            'mailboxes[0].ca_file: not used with backend = "maildir"',
        ),
        (
            IMAP_BOX + 'security = "none"\n' + OUTGOING,
            'mailboxes[0].security: "none" sends the login in clear text to imap.example.jp: use'
            ' "ssl" or "starttls", or set allow_plaintext = true in this table',
        ),
        (
            MAILDIR_BOX + SMTP + 'security = "none"\n',
            'outgoing.security: "none" sends the login in clear text to smtp.example.jp',
        ),
        (
            MAILDIR_BOX + '[mailboxes.outgoing]\nhost = "10.0.0.1"\nsecurity = "none"\n' + SMTP,
            'mailboxes[0].outgoing.security: "none" sends the login in clear text to 10.0.0.1',
        ),
        (
            IMAP_BOX + 'password = "x"\npassword_file = "pw"\n' + OUTGOING,
            "mailboxes[0].password_file: give one of password, password_file",
        ),
    ],
)
def test_a_bad_server_login_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture, config: str, expected: str
):
    path = tmp_path / "config.toml"
    path.write_text(config, encoding="utf-8")
    assert main(["--config", str(path), "cases"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mailbot: ")
    assert expected in err


def test_server_login_keys_resolve_paths_defaults_and_a_mailboxs_own_login(tmp_path: Path):
    config = parse_config(
        IMAP_BOX
        + 'ca_file = "certs/ca.pem"\nauth = "oauth2"\n'
        + MS
        + 'certificate_file = "app.pem"\n'
        + '\n[[mailboxes]]\naddress = "youryou_rikuase_long@occto.or.jp"\nbackend = "maildir"\n'
        'path = "in"\n[mailboxes.outgoing]\nport = 465\nsecurity = "ssl"\nauth = "oauth2"\n'
        '[mailboxes.outgoing.oauth2]\nprovider = "google"\nservice_account_file = "sa.json"\n'
        + SMTP
        + 'ca_file = "/etc/ca.pem"\n',
        "<t>",
        tmp_path,
    )
    code, long = config.mailboxes
    assert code.ca_file == tmp_path / "certs/ca.pem"
    assert code.oauth2 is not None
    assert code.oauth2.authority == "https://login.microsoftonline.com/t"
    assert code.oauth2.scope == "https://outlook.office365.com/.default"
    assert code.oauth2.certificate_file == tmp_path / "app.pem"
    assert code.oauth2.mechanism == "xoauth2"
    own = long.outgoing
    assert own is not None
    assert (own.host, own.port, own.security) == ("smtp.example.jp", 465, "ssl")
    assert own.username == own.envelope_from == "youryou_rikuase_long@occto.or.jp"
    assert own.ca_file == Path("/etc/ca.pem")
    assert own.oauth2 is not None and own.oauth2.service_account_file == tmp_path / "sa.json"
    assert own.oauth2.scope == "https://mail.google.com/" and own.oauth2.token_uri is None
    assert config.outgoing.auth == "password" and config.outgoing.oauth2 is None


def test_password_file_and_plaintext_to_this_machine_or_when_allowed(tmp_path: Path):
    (tmp_path / "imap-password").write_text("s3cret\n", encoding="utf-8")
    config = parse_config(
        IMAP_BOX
        + 'password_file = "imap-password"\nsecurity = "none"\nallow_plaintext = true\n'
        + '[outgoing]\nbackend = "smtp"\nhost = "::1"\nsecurity = "none"\n'
        + 'username = "code"\npassword_file = "missing"\n',
        "<t>",
        tmp_path,
    )
    assert config.mailboxes[0].password == "s3cret"
    assert config.outgoing.password is None
    assert config.outgoing.password_problem == (
        f"password_file: {tmp_path / 'missing'}: No such file or directory"
    )
    for host in ("127.0.0.1", "localhost", "[::1]"):
        text = MAILDIR_BOX + f'[outgoing]\nbackend = "smtp"\nhost = "{host}"\nsecurity = "none"\n'
        assert parse_config(text, "<t>", tmp_path).outgoing.security == "none"


def test_the_example_documents_every_key(tmp_path: Path):
    """config.example.toml names every key the schema takes (set, or commented out with its
    explanation), and every table inside a server table as its own [header]."""
    text = (Path(__file__).resolve().parent.parent / "config.example.toml").read_text("utf-8")
    undocumented = []
    for where, keys in [(t, k) for t, (_, k) in SCHEMA.items()] + list(SUBTABLES.items()):
        for key, kind in keys.items():
            if kind == "table":
                found = re.search(rf"^#? ?\[[a-z.]*\b{key}\]", text, re.M)
            else:
                found = re.search(rf"^#? ?{key} = ", text, re.M)
            if not found:
                undocumented.append(f"{where}.{key}")
    assert undocumented == []
