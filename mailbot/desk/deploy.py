"""`mailbot init DIR`: a deployment folder an operator owns, made from what ships in the package.

The folder gets a `config.toml` whose relative paths are taken from that folder (data/, its own
rules/ and templates/ through `[paths]`) and editable copies of the rules, the mail templates
and the sample mails. Nothing is ever written into the installed package, and nothing that
exists is overwritten: staff edits in rules/ must survive a second `init`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from mailbot.config import DEFAULT_CONFIG, RULES_DIR, TEMPLATES_DIR, load_config
from mailbot.desk.service_files import refuse_unsafe_path, service_files
from mailbot.private import private_dir, write_private

SAMPLES_DIR = Path(str(files("mailbot") / "samples"))

CONFIG = (
    """\
# mailbot deployment written by `mailbot init`. Relative paths are taken from this folder.
# It runs as written on Maildir folders under data/ (try: mailbot deliver --samples; mailbot run
# --once; mailbot cases). For the real servers, switch [[mailboxes]] to backend = "imap" and
# [outgoing] to backend = "smtp" (every key: the README's configuration reference).
"""
    + DEFAULT_CONFIG
    + """
[web]
# mailbot web: the staff desk (serve it behind HTTPS; see the README's web desk section)
host = "127.0.0.1"
port = 8080
secure_cookies = true         # cookies over HTTPS only
session_hours = 10            # idle time after which a session ends
session_max_hours = 12        # a session ends this long after its login, however busy
connections_per_client = 16   # connections one address may hold (a trusted proxy: no cap)
# trusted_proxies = ["127.0.0.1"]         # the reverse proxy: its X-Forwarded-For names the client
# trusted_user_header = "X-Remote-User"   # believe the proxy's user header (needs trusted_proxies)
# base_url = "https://desk.example.lan"   # the report, digest and alerts link each case here

[trust]
# The authserv-id our receiving MTA writes in Authentication-Results (RFC 8601). Only these count
# as its verdict: unset, no dmarc=pass vouches for a sender and `mailbot doctor` warns.
# authserv_ids = ["mx.occto.or.jp"]

[paths]
# this deployment's own copies: edit them here, they survive upgrades of mailbot
rules = "rules"
templates = "templates"
"""
)
"""The embedded default (config.DEFAULT_CONFIG) with the web desk's keys and its own rules and
templates."""


@dataclass
class InitResult:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def _copy_tree(source: Path, target: Path, root: Path, result: InitResult) -> None:
    for item in sorted(source.rglob("*")):
        if item.is_dir() or item.suffix == ".pyc" or "__pycache__" in item.parts:
            continue
        dest = target / item.relative_to(source)
        name = str(dest.relative_to(root))
        if dest.exists():
            result.kept.append(name)
            continue
        write_private(private_dir(dest.parent) / dest.name, item.read_bytes())
        result.written.append(name)


def init_deployment(folder: Path) -> InitResult:
    """Write config.toml, rules/, templates/, samples/ and deploy/ (the service files, made
    from the folder's config.toml as it then is) into `folder`; keep what exists. data/ is
    created, since the units' ReadWritePaths must exist when they start.

    Raises ConfigError when an existing config.toml does not load."""
    result = InitResult()
    refuse_unsafe_path(folder.resolve())
    private_dir(folder)
    folder = folder.resolve()
    config = folder / "config.toml"
    if config.exists():
        result.kept.append("config.toml")
    else:
        write_private(config, CONFIG.encode("utf-8"))
        result.written.append("config.toml")
    _copy_tree(RULES_DIR, folder / "rules", folder, result)
    _copy_tree(TEMPLATES_DIR, folder / "templates", folder, result)
    _copy_tree(SAMPLES_DIR, folder / "samples", folder, result)
    private_dir(folder / "data")
    for name, text in service_files(folder, load_config(str(config))).items():
        dest = folder / "deploy" / name
        if dest.exists():
            result.kept.append(f"deploy/{name}")
            continue
        write_private(private_dir(dest.parent) / dest.name, text.encode("utf-8"))
        result.written.append(f"deploy/{name}")
    return result


def sample_mails() -> list[Path]:
    """The bundled sample mails (the demo's), from the installed package."""
    return sorted(SAMPLES_DIR.glob("*.eml"))
