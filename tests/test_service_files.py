"""`mailbot init` writes the service files (issue 24: 「`mailbot init` writes systemd units for
`run` and `web` with the folder's paths, and an example reverse proxy for HTTPS」)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.desk.service_files import service_user

MAILBOT = str(Path(sys.executable).with_name("mailbot"))


def directives(text: str) -> dict[str, list[str]]:
    """Each `Key=value` of a unit file (comments and sections left out), in order."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "capacity desk"  # a space, quoted where systemd needs it
    assert main(["init", "capacity desk"]) == 0
    return folder


@pytest.mark.parametrize(
    ("unit", "verb"), [("mailbot-run.service", "run"), ("mailbot-web.service", "web")]
)
def test_units_carry_the_folders_paths_and_the_hardening(deployed: Path, unit: str, verb: str):
    keys = directives((deployed / "deploy" / unit).read_text(encoding="utf-8"))
    assert keys["WorkingDirectory"] == [str(deployed)]
    assert keys["User"] == [service_user(deployed)]
    assert keys["ExecStart"] == [f'{MAILBOT} --config "{deployed}/config.toml" {verb}']
    assert keys["Restart"] == ["on-failure"]
    assert keys["UMask"] == ["0077"]
    assert keys["NoNewPrivileges"] == ["yes"]
    assert keys["ProtectSystem"] == ["strict"]
    assert keys["ReadWritePaths"] == [f'"{deployed}/data"']
    assert (deployed / "data").is_dir()  # systemd refuses to start on a missing ReadWritePath
    assert keys["EnvironmentFile"] == [f"-{deployed}/deploy/mailbot.env"]
    assert keys["WantedBy"] == ["multi-user.target"]


def test_the_proxy_example_passes_the_client_as_the_web_desk_expects(deployed: Path):
    text = (deployed / "deploy" / "nginx-mailbot-web.conf").read_text(encoding="utf-8")
    assert "proxy_pass http://127.0.0.1:8080;" in text  # [web] host and port of config.toml
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert 'trusted_proxies = ["127.0.0.1"]' in text
    assert "listen 443 ssl;" in text and "return 301 https://" in text
    assert 'proxy_set_header X-Remote-User "";' in text


def test_the_units_follow_the_folders_own_config(tmp_path: Path):
    """A database and a web port moved in config.toml move the units' paths with them; a
    second init keeps the files (delete one to have it written again)."""
    folder = tmp_path / "desk"
    folder.mkdir()
    (folder / "config.toml").write_text(
        '[storage]\ndatabase = "/var/lib/desk-db/mailbot.db"\n\n'
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\n'
        'path = "data/inbox/code"\n\n'
        '[outgoing]\nbackend = "maildir"\npath = "spool/out"\n\n'
        '[web]\nhost = "0.0.0.0"\nport = 8443\n',
        encoding="utf-8",
    )
    assert main(["init", str(folder)]) == 0
    run = directives((folder / "deploy" / "mailbot-run.service").read_text(encoding="utf-8"))
    assert run["ReadWritePaths"] == [f"{folder}/data {folder}/spool/out /var/lib/desk-db"]
    proxy = (folder / "deploy" / "nginx-mailbot-web.conf").read_text(encoding="utf-8")
    assert "proxy_pass http://127.0.0.1:8443;" in proxy
    (folder / "deploy" / "mailbot-web.service").write_text("# staff edit\n", encoding="utf-8")
    assert main(["init", str(folder)]) == 0
    assert (folder / "deploy" / "mailbot-web.service").read_text() == "# staff edit\n"


def test_a_path_that_would_inject_a_directive_is_refused(tmp_path: Path, capsys):
    assert main(["init", str(tmp_path / "desk\nExecStartPre=/bin/sh")]) == 5
    assert "control character" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_systemd_analyze_verify_accepts_both_units(deployed: Path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the units were not verified by systemd")
    units = [str(deployed / "deploy" / u) for u in ("mailbot-run.service", "mailbot-web.service")]
    done = subprocess.run(
        ["systemd-analyze", "verify", *units],
        capture_output=True,
        text=True,
        env=os.environ | {"SYSTEMD_LOG_COLOR": "0"},
    )
    # verify exits 0 on a directive it ignores; every such complaint is printed, so none may be
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_nginx_accepts_the_proxy_example(deployed: Path, tmp_path: Path):
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    openssl = shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip(
            "nginx (or openssl) is not installed: the proxy example was not parsed by nginx"
        )
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=desk.example.jp",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
    )
    site = (deployed / "deploy" / "nginx-mailbot-web.conf").read_text(encoding="utf-8")
    site = site.replace("/etc/ssl/certs/desk.example.jp.pem", str(tmp_path / "cert.pem"))
    site = site.replace("/etc/ssl/private/desk.example.jp.key", str(tmp_path / "key.pem"))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path / 'site.conf'}; }}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "syntax is ok" in done.stderr, done.stderr
