"""Clear-text passwords (issue 25, point 5): `security = "none"` sends the login as written.
To a loopback host (a local relay) that is fine; to any other host it is a configuration
error (exit 3) unless that server's table says `allow_plaintext = true`, and doctor then
warns."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.config import is_loopback

OUTGOING_MAILDIR = '[outgoing]\nbackend = "maildir"\npath = "outbox"\n'
MAILDIR_BOX = (
    '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\npath = "inbox/code"\n'
)


def imap_box(host: str, extra: str = "") -> str:
    return (
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\n'
        f'host = "{host}"\nusername = "code"\nsecurity = "none"\n'
        f'password_env = "MAILBOT_TEST_PASSWORD"\n{extra}'
    )


def smtp(host: str, extra: str = "") -> str:
    return (
        f'[outgoing]\nbackend = "smtp"\nhost = "{host}"\nsecurity = "none"\nport = 25\n'
        f'username = "code"\npassword = "secret"\n{extra}'
    )


def run(tmp_path: Path, text: str, *args: str) -> int:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return main(["--config", str(path), *args])


@pytest.mark.parametrize(
    ("text", "where", "host"),
    [
        (imap_box("imap.example.jp") + OUTGOING_MAILDIR, "mailboxes[0]", "imap.example.jp"),
        (imap_box("192.0.2.10") + OUTGOING_MAILDIR, "mailboxes[0]", "192.0.2.10"),
        (MAILDIR_BOX + smtp("smtp.example.jp"), "outgoing", "smtp.example.jp"),
        (MAILDIR_BOX + smtp("localhost.example.jp"), "outgoing", "localhost.example.jp"),
    ],
)
def test_a_password_in_clear_text_to_another_host_is_a_configuration_error(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch, text: str, where: str, host: str
):
    monkeypatch.setenv("MAILBOT_TEST_PASSWORD", "secret")
    for command in (["cases"], ["doctor", "--offline"], ["run", "--once"]):
        assert run(tmp_path, text, *command) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"mailbot: {where}.security: ")
        assert f"clear text to {host}" in err and "allow_plaintext = true" in err


def test_allow_plaintext_loads_and_doctor_warns(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MAILBOT_TEST_PASSWORD", "secret")
    text = imap_box("imap.example.jp", "allow_plaintext = true\n") + smtp(
        "smtp.example.jp", "allow_plaintext = true\n"
    )
    assert run(tmp_path, text, "doctor", "--offline") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("clear-text passwords"))
    assert "\twarn\t" in row
    assert "imap.example.jp:143" in row and "smtp.example.jp:25" in row


def test_loopback_and_no_password_need_no_permission(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MAILBOT_TEST_PASSWORD", "secret")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.53"):
        assert run(tmp_path, imap_box(host) + smtp(host), "doctor", "--offline") == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if line.startswith("clear-text passwords"))
        assert "\tok\t" in row
    no_password = MAILDIR_BOX + '[outgoing]\nbackend = "smtp"\nhost = "relay.example.jp"\n'
    assert run(tmp_path, no_password + 'security = "none"\nport = 25\n', "cases") == 0


def test_allow_plaintext_is_a_boolean_of_a_server_table(tmp_path: Path, capsys):
    text = MAILDIR_BOX + smtp("smtp.example.jp", 'allow_plaintext = "yes"\n')
    assert run(tmp_path, text, "cases") == 3
    assert "outgoing.allow_plaintext" in capsys.readouterr().err
    text = MAILDIR_BOX + "allow_plaintext = true\n" + OUTGOING_MAILDIR
    assert run(tmp_path, text, "cases") == 3
    assert 'mailboxes[0].allow_plaintext: not used with backend = "maildir"' in (
        capsys.readouterr().err
    )


def test_loopback_is_read_as_written():
    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("LOCALHOST.")
    assert not is_loopback("localhost.example.jp") and not is_loopback("10.0.0.1")
