"""The service files `mailbot init` writes into `DIR/deploy/`: systemd units for `mailbot run`
and `mailbot web` with this deployment's paths, and an example HTTPS reverse proxy (nginx) in
front of the web desk. They are text made from the folder's own configuration, never installed
by mailbot: the operator links them into systemd (`systemctl link`) and nginx."""

from __future__ import annotations

import pwd
import shutil
import sys
from pathlib import Path

from mailbot.config import Config
from mailbot.errors import MailbotError

RUN_UNIT = "mailbot-run.service"
WEB_UNIT = "mailbot-web.service"
PROXY = "nginx-mailbot-web.conf"
SERVICE_ACCOUNT = "mailbot"

HARDENING = """\
# Hardening: the desk only reads its folder and the package, and writes under ReadWritePaths.
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={writable}
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
CapabilityBoundingSet=
"""

UNIT = """\
# {what}
# Written by `mailbot init` for the deployment in {folder}.
# Install: systemctl link {path} && systemctl enable --now {name}
# Passwords (each `password_env` of config.toml) go in {env_file}
# (owner root, mode 0600: systemd reads it before it drops to User=), never in config.toml.
{user_note}[Unit]
Description=mailbot {role} ({folder})
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={folder}
EnvironmentFile=-{env_file}
ExecStart={execstart}
# SIGTERM: the current step is finished and the process exits.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=10
{hardening}
[Install]
WantedBy=multi-user.target
"""

NGINX = """\
# Example HTTPS reverse proxy for `mailbot web` (nginx), written by `mailbot init` for
# {folder}. Replace desk.example.jp and the certificate paths, then include this file from
# nginx's configuration (e.g. link it into /etc/nginx/sites-enabled/) and reload nginx.
#
# config.toml must trust this proxy, or every client looks like {upstream_host} to the login
# throttle:
#   [web]
#   trusted_proxies = ["{upstream_host}"]
# The desk then takes the client from the right-most X-Forwarded-For hop that is not a trusted
# proxy; $proxy_add_x_forwarded_for appends the peer nginx saw to whatever the client sent, so
# that hop is always the real peer. The desk's cookies are Secure: serve it over HTTPS only.

server {{
    listen 80;
    listen [::]:80;
    server_name desk.example.jp;
    return 301 https://$host$request_uri;
}}

server {{
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name desk.example.jp;

    ssl_certificate     /etc/ssl/certs/desk.example.jp.pem;
    ssl_certificate_key /etc/ssl/private/desk.example.jp.key;
    ssl_protocols       TLSv1.2 TLSv1.3;
    add_header Strict-Transport-Security "max-age=31536000" always;

    location / {{
        proxy_pass http://{upstream};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
        # Never pass on a user header a client made up (see [web] trusted_user_header).
        proxy_set_header X-Remote-User "";
        proxy_read_timeout 60s;
    }}
}}
"""


def refuse_unsafe_path(path: Path) -> None:
    """Raises MailbotError when `path` cannot go in a unit file (see `_systemd_path`); `init`
    asks before it writes anything."""
    _systemd_path(path)


def _systemd_path(path: Path) -> str:
    """A path as a unit file takes it: `%` is a specifier there (written `%%`); a control
    character (a newline would start a directive of its own) is refused.

    Raises MailbotError for such a path."""
    text = str(path)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise MailbotError(f"{text!r}: a control character in a path cannot go in a unit file")
    return text.replace("%", "%%")


def _quoted(path: Path) -> str:
    text = _systemd_path(path)
    return f'"{text}"' if any(ch in text for ch in " \"'\\") else text


def folder_owner(folder: Path) -> str:
    """The name of the folder's owner (its uid where the account has no name)."""
    uid = folder.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def service_user(folder: Path) -> str:
    """The account the units run as: the folder's owner, unless that is root, in which case
    the dedicated `mailbot` account the unit's comment has the operator create."""
    owner = folder_owner(folder)
    return SERVICE_ACCOUNT if owner in ("root", "0") else owner


def mailbot_command() -> list[str]:
    """How systemd starts this installation: the `mailbot` script beside the running
    interpreter (the venv's), else the interpreter with `-m mailbot`."""
    script = Path(sys.executable).with_name("mailbot")
    if script.is_file():
        return [str(script)]
    found = shutil.which("mailbot")
    return [found] if found else [sys.executable, "-m", "mailbot"]


def writable_paths(folder: Path, config: Config) -> list[Path]:
    """Where the desk writes: data/, the database's folder (the send journal and the locks
    sit beside it) and every Maildir; a path inside another one listed is left out."""
    wanted = [folder / "data", config.database.parent]
    wanted += [box.path for box in config.mailboxes if box.backend == "maildir" and box.path]
    if config.outgoing.backend == "maildir" and config.outgoing.path:
        wanted.append(config.outgoing.path)
    paths = sorted({Path(p).resolve() for p in wanted})
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


def service_files(folder: Path, config: Config) -> dict[str, str]:
    """The text of each file of `deploy/` for the deployment in `folder` (absolute), whose
    configuration `config` is. Raises MailbotError for a path a unit file cannot hold."""
    command = [*mailbot_command(), "--config", str(folder / "config.toml")]
    user = service_user(folder)
    user_note = (
        f"# The folder belongs to root, so the desk runs as the account {user}: create it and\n"
        f"# give it the folder, e.g. useradd --system --home-dir {folder} {user} &&"
        f" chown -R {user} {folder}\n"
        if folder_owner(folder) in ("root", "0")
        else ""
    )
    hardening = HARDENING.format(
        writable=" ".join(_quoted(p) for p in writable_paths(folder, config))
    )
    files = {}
    for name, role, what, verb in (
        (RUN_UNIT, "run", "The mail desk: mailboxes, processing, sending, jobs.", ["run"]),
        (WEB_UNIT, "web", "The staff desk in the browser (behind the HTTPS proxy).", ["web"]),
    ):
        files[name] = UNIT.format(
            what=what,
            folder=_systemd_path(folder),
            path=folder / "deploy" / name,
            name=name,
            env_file=_systemd_path(folder / "deploy" / "mailbot.env"),
            user_note=user_note,
            role=role,
            user=user,
            execstart=" ".join(_quoted(Path(part)) for part in [*command, *verb]),
            hardening=hardening,
        )
    host = config.web.host if config.web.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    upstream_host = f"[{host}]" if ":" in host else host
    files[PROXY] = NGINX.format(
        folder=folder, upstream=f"{upstream_host}:{config.web.port}", upstream_host=host
    )
    return files
