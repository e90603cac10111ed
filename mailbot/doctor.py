"""`mailbot doctor`: what an operator checks before trusting the desk, in one command: the
configuration and rules load, the templates compile and the mails render, the servers answer, the database is sound,
and nothing is stuck. `mailbot backup`: a consistent copy of the database while `mailbot run`
keeps working.

doctor never creates or changes anything (the database is opened read-only, a mistyped path is
reported, not made), and one failing check never hides the others: each is a row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiosmtplib

from mailbot.config import TEMPLATES_DIR, Config, MailboxConfig, OutgoingConfig
from mailbot.context import Context
from mailbot.errors import MailbotError
from mailbot.private import too_open
from mailbot.rulefile import RulesFile
from mailbot.store.health import Health, backup_checked, read_health
from mailbot.store.journal import SUFFIX as JOURNAL_SUFFIX
from mailbot.store.monitor import MailboxStatus, read_mailbox_statuses

OK, WARN, FAIL = "ok", "warn", "FAIL"
RESOLVE_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


class _Warning(Exception):
    """A check that passes but wants the operator's eye (a warn row)."""


def _row(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, OK, check())
    except _Warning as warning:
        return Check(name, WARN, str(warning))
    except (MailbotError, OSError) as exc:
        return Check(name, FAIL, " ".join(str(exc).split()))


def rules_files() -> tuple[RulesFile[Any], ...]:
    """Every file of rules/, each with its one loader: the registry doctor checks and
    tests/test_rulefile.py holds against the shipped folder."""
    from mailbot.businessdays import CALENDAR_RULES
    from mailbot.desk.jobs import SCHEDULE_RULES
    from mailbot.forms.bodyfields import BODY_FIELDS
    from mailbot.forms.workbook import FORM_RULES
    from mailbot.identity import OPERATOR_RULES
    from mailbot.longterm.market import MARKET_RULES
    from mailbot.longterm.roadmap import ROADMAP_RULES
    from mailbot.longterm.topics import TOPIC_RULES
    from mailbot.mail.trust import TRUST_RULES
    from mailbot.procedures.contact_change import CONTACT_CHANGE_RULES
    from mailbot.procedures.licenses import LICENSE_RULES
    from mailbot.routing import ROUTING_RULES

    return (
        CALENDAR_RULES,
        ROUTING_RULES,
        FORM_RULES,
        LICENSE_RULES,
        CONTACT_CHANGE_RULES,
        BODY_FIELDS,
        ROADMAP_RULES,
        TOPIC_RULES,
        SCHEDULE_RULES,
        TRUST_RULES,
        MARKET_RULES,
        OPERATOR_RULES,
    )


def _rules(config: Config) -> list[Check]:
    from mailbot.identity import load_operator
    from mailbot.longterm.notice_pdf import register_font

    rules = config.rules_dir
    out = []
    for rules_file in rules_files():
        out.append(_row(f"rules/{rules_file.name}", partial(_rules_file, rules_file, rules)))
    address = next(
        (b.address for b in config.mailboxes if b.local_part == "youryou_rikuase_long"),
        f"youryou_rikuase_long@{config.message_id_domain}",
    )
    out.append(_row("notice font", lambda: register_font(load_operator(rules, address).fonts)))
    return out


def _rules_file(rules_file: RulesFile[Any], rules: Path) -> str:
    if rules_file.may_be_missing() and not (rules / rules_file.name).is_file():
        # the run falls back to defaults; doctor still says the deployment's copy is missing
        raise MailbotError(f"{rules / rules_file.name}: not found (check [paths] rules)")
    loaded = rules_file.load(rules)
    if getattr(loaded, "example", False):
        raise _Warning("EXAMPLE values (example = true): replace before real assessments")
    return "loads"


def _templates(config: Config) -> Check:
    """Every template mailbot uses must be there and compile, with the blocks a mail needs, and
    every mail template must render: a wrong `[paths] templates` or an edited template would
    otherwise quarantine every mail at its first reply."""
    import jinja2

    from mailbot.mail.render import Renderer

    folder = config.templates_dir
    if not folder.is_dir():
        return Check("templates", FAIL, f"{folder}: not a folder (check [paths] templates)")
    renderer = Renderer(folder)
    env = renderer.env
    rendered = 0
    names = sorted(
        name
        for name in (str(p.relative_to(TEMPLATES_DIR)) for p in TEMPLATES_DIR.rglob("*.j2"))
        if not name.startswith(("web/", "replies/"))
    )
    problems, pages = _web_pages(config)
    replies = _canned_replies(config, problems)
    problems += _topic_paragraphs(config, env)
    for name in names:
        try:
            template = env.get_template(name)
        except jinja2.TemplateNotFound:
            problems.append(f"{name}: missing")
            continue
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{name}: line {exc.lineno}: {exc.message}")
            continue
        wanted = {"subject", "body"} if name.startswith("mail/") and "/_" not in name else set()
        if wanted - set(template.blocks):
            problems.append(f"{name}: no {{% block {sorted(wanted - set(template.blocks))[0]} %}}")
            continue
        if wanted:
            problem = _render_problem(renderer, name)
            rendered += problem is None
            if problem:
                problems.append(f"{name}: {problem}")
    if problems:
        return Check("templates", FAIL, f"{folder}: " + "; ".join(problems[:3]))
    return Check(
        "templates",
        OK,
        f"{len(names)} compile, {rendered} mails render, {pages}, {replies} ({folder})",
    )


def _canned_replies(config: Config, problems: list[str]) -> str:
    """Every canned reply of the desk (templates/replies/) rendered with a sample case, as
    the desk renders it; what fails goes into `problems`. Returns a summary."""
    from mailbot.desk.replies import render_reply, reply_names, sample_fields

    names = reply_names(config)
    for name in names:
        try:
            render_reply(config, name, sample_fields())
        except Exception as exc:
            problems.append(f"replies/{name}.txt.j2: does not render: {type(exc).__name__}: {exc}")
    return f"{len(names)} canned replies render"


def _topic_paragraphs(config: Config, env: Any) -> list[str]:
    """Each topic of rules/longterm_topics.toml has its paragraph, mail/_topic_<id>.txt.j2:
    the topic reply includes it by the topic's id and, without it, would answer with the
    topic's heading alone. A topics file that does not load is its own rules row."""
    import jinja2

    from mailbot.longterm.topics import TOPIC_RULES

    try:
        topics = TOPIC_RULES.load(config.rules_dir).topics
    except MailbotError:
        return []
    problems = []
    for topic in topics:
        name = f"mail/_topic_{topic.id}.txt.j2"
        try:
            env.get_template(name)
        except jinja2.TemplateNotFound:
            problems.append(f"{name}: missing (topic {topic.id} of rules/longterm_topics.toml)")
    return problems


def _web_pages(config: Config) -> tuple[list[str], str]:
    """The web desk's pages, loaded as the desk loads them (`page_environment`): the
    deployment's copy where it has one, else the shipped one. A deployment without web/ is
    fine; a broken page of its own is not. Returns (problems, a summary)."""
    import jinja2

    from mailbot.desk.web.app import page_environment

    env = page_environment(config)
    names = sorted(f"web/{p.name}" for p in (TEMPLATES_DIR / "web").glob("*.j2"))
    problems: list[str] = []
    own = 0
    for name in names:
        try:
            template = env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{exc.filename or name}: line {exc.lineno}: {exc.message}")
            continue
        except jinja2.TemplateNotFound:
            problems.append(f"{name}: missing")
            continue
        own += (
            Path(template.filename or "").resolve().is_relative_to(config.templates_dir.resolve())
        )
    return problems, f"{len(names)} web pages compile ({own} of this folder's own)"


def _render_problem(renderer: Any, name: str) -> str | None:
    """One mail template rendered as the code renders it, with a representative context:
    an undefined name or attribute, or a filter failing on real values, shows here and not in
    the first participant's mail that needs this template."""
    import jinja2

    from mailbot.mail.samples import sample_context

    mail = name.removeprefix("mail/").removesuffix(".txt.j2")
    context = sample_context(mail)
    if context is None:
        return "no sample context to render it with"
    try:
        renderer.mail(mail, context)
    except jinja2.TemplateError as exc:
        where = f"line {exc.lineno}: " if getattr(exc, "lineno", None) else ""
        return f"does not render: {where}{exc.message or type(exc).__name__}"
    except Exception as exc:  # a filter or a value the template calls, failing on real data
        return f"does not render: {type(exc).__name__}: {exc}"
    return None


def _database(config: Config, now: datetime) -> list[Check]:
    path = config.database
    if not path.exists():
        where = "its folder does not exist either" if not path.parent.is_dir() else "no file"
        return [
            Check(
                "database",
                WARN,
                f"{path}: {where}; the first `mailbot run` creates it"
                " (check [storage] database if one should be there)",
            )
        ]
    try:
        health = read_health(path, now)
        statuses = read_mailbox_statuses(path)
    except sqlite3.Error as exc:
        return [Check("database integrity", FAIL, f"{path}: {exc}")]
    return _database_rows(health, path) + [
        _reading(box.address, statuses.get(box.address), now, config) for box in config.mailboxes
    ]


def _reading(address: str, status: MailboxStatus | None, now: datetime, config: Config) -> Check:
    """How the run last read a mailbox (`mailbox_status`): FAIL once it has been unreadable
    for `[monitoring] mailbox_alert_minutes` (staff are mailed then), WARN before."""
    name = f"reading {address}"
    if status is None:
        return Check(name, OK, "no read recorded yet (`mailbot run` records each one)")
    if status.failing_since is None:
        return Check(name, OK, f"read at {status.last_ok_at}")
    minutes = status.failing_for(now) / 60
    late = minutes >= config.monitoring.mailbox_alert_minutes
    detail = (
        f"unreadable since {status.failing_since} ({minutes:.0f} min, {status.failure_kind}):"
        f" {status.last_error}"
        + (f"; staff told at {status.alerted_at}" if status.alerted_at else "")
    )
    return Check(name, FAIL if late else WARN, " ".join(detail.split()))


def _database_rows(h: Health, path: Path) -> list[Check]:
    return [
        Check("database integrity", OK if h.integrity == "ok" else FAIL, f"{path}: {h.integrity}"),
        Check(
            "unprocessed mail",
            OK if h.stored == 0 else WARN,
            "none" if h.stored == 0 else f"{h.stored} waiting, oldest stored {h.oldest_stored}",
        ),
        Check(
            "unsent replies",
            OK if h.due == 0 else WARN,
            "none due" if h.due == 0 else f"{h.due} due, oldest due since {h.oldest_due}",
        ),
        Check(
            "send journal",
            OK if h.journalled == 0 else WARN,
            "empty"
            if h.journalled == 0
            else f"{h.journalled} replies a stopped run sent are recorded only in"
            f" {path.name}.sends; the next run or send records them (do not delete it)",
        ),
        Check(
            "undeliverable replies",
            OK if h.undeliverable == 0 else WARN,
            f"{h.undeliverable} (staff were told; see `mailbot cases`)"
            if h.undeliverable
            else "none",
        ),
    ]


def _mailbox(box: MailboxConfig, resolve: Resolver) -> Check:
    name = f"mailbox {box.address}"
    if box.backend == "maildir":
        assert box.path is not None
        ok = (box.path / "new").is_dir()
        return Check(
            name,
            OK if ok else WARN,
            f"Maildir {box.path}" + ("" if ok else " (created on first run)"),
        )
    from mailbot.intake.mailboxes.imap import ImapMailbox

    where = f"imap {box.host}:{box.port}"
    try:
        box.require_password()
        resolve(box.host or "localhost")
        mailbox = ImapMailbox.from_config(box, timeout=CONNECT_TIMEOUT, attempts=1)
        try:
            detail = mailbox.probe()
        finally:
            mailbox.close()
        if box.oauth2 is not None:
            detail += f", {box.oauth2.mechanism.upper()} with a {box.oauth2.provider} token"
        return Check(name, OK, f"{where} {detail}")
    except (MailbotError, OSError) as exc:
        text = " ".join(str(exc).split()).removeprefix(f"mailbox {box.address}: ")
        return Check(name, FAIL, text if where in text else f"{where}: {text}")


class Resolver:
    """Looks each server name up once per doctor run (an IMAP and an SMTP server on one host
    share the answer, or the failure), giving up after RESOLVE_TIMEOUT: the system resolver's
    own retries cost ~33 s for an unknown host, and again on every connection attempt."""

    def __init__(self) -> None:
        self.answers: dict[str, str | MailbotError] = {}

    def __call__(self, host: str) -> str:
        if host not in self.answers:
            self.answers[host] = self._lookup(host)
        answer = self.answers[host]
        if isinstance(answer, MailbotError):
            raise answer
        return answer

    @staticmethod
    def _lookup(host: str) -> str | MailbotError:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
        try:
            return str(future.result(timeout=RESOLVE_TIMEOUT)[0][4][0])
        except concurrent.futures.TimeoutError:
            return MailbotError(f"{host}: no answer from DNS within {RESOLVE_TIMEOUT:g} s")
        except (socket.gaierror, UnicodeError) as exc:
            return MailbotError(f"{host}: cannot resolve ({getattr(exc, 'strerror', exc)})")
        finally:
            pool.shutdown(wait=False)


def _outgoing(config: Config, resolve: Resolver) -> list[Check]:
    """The `[outgoing]` server, and each mailbox's own SMTP login (`[mailboxes.outgoing]`):
    connected, TLS verified, logged in (an OAuth2 login fetches its token first)."""
    cfg = config.outgoing
    if cfg.backend == "maildir":
        return [Check("outgoing", OK, f"Maildir {cfg.path}")]
    rows = [_smtp("outgoing", cfg, resolve)]
    for box in config.mailboxes:
        if box.outgoing is not None:
            rows.append(_smtp(f"outgoing for {box.address}", box.outgoing, resolve))
    return rows


def _smtp(name: str, cfg: OutgoingConfig, resolve: Resolver) -> Check:
    from mailbot.mailauth import certificate_problem, tls_context
    from mailbot.outbox.send import smtp_login

    where = f"smtp {cfg.host}:{cfg.port}"
    try:
        cfg.require_password()
        resolve(cfg.host or "localhost")
        context = tls_context(cfg.ca_file) if cfg.security != "none" else None
    except MailbotError as exc:
        return Check(name, FAIL, f"{where}: {exc}")

    async def probe() -> str:
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "ssl",
            start_tls=cfg.security == "starttls",
            tls_context=context,
            timeout=min(cfg.timeout, CONNECT_TIMEOUT),
        )
        await client.connect()
        try:
            how = await smtp_login(client, cfg)
            return "connected" + (f" and logged in {how}" if how else "")
        finally:
            await client.quit()

    try:
        return Check(name, OK, f"{where}: {asyncio.run(probe())}")
    except (aiosmtplib.SMTPException, OSError, MailbotError) as exc:
        text = " ".join(str(getattr(exc, "message", None) or exc).split())
        text = certificate_problem(exc, where) or text.removeprefix(f"{cfg.name}: ")
        return Check(name, FAIL, text if where in text else f"{where}: {text}")


def _authserv_ids(config: Config) -> str:
    if not config.authserv_ids:
        raise _Warning(
            "[trust] authserv_ids is not set: no Authentication-Results header counts as our "
            "MTA's, so no dmarc=pass vouches for a sender (a Reply-To elsewhere is held, staff "
            "decisions by mail are refused); set the id our receiving MTA stamps"
        )
    return ", ".join(config.authserv_ids)


def _clear_text(config: Config) -> str:
    """Servers whose password goes in clear text (`allow_plaintext = true`: a loopback host
    needs no permission, any other one is refused at load without it)."""
    servers = [*config.mailboxes, config.outgoing]
    named = [f"{s.host}:{s.port}" for s in servers if s.allow_plaintext and s.security == "none"]
    if named:
        raise _Warning(
            f"passwords go in clear text (allow_plaintext = true) to {', '.join(named)}: "
            "anyone on the path reads them; use ssl or starttls"
        )
    return "no password is sent in clear text to another host"


def private_paths(config: Config) -> list[Path]:
    """What holds participants' mail or staff secrets, wherever it exists: the database's
    folder, the database and its -wal/-shm, the send journal and its lock, backups beside the
    database, and the outgoing Maildir (folders and files)."""
    db = config.database
    paths = [db.parent]
    for name in (db.name, f"{db.name}{JOURNAL_SUFFIX}"):
        paths += [db.with_name(name + suffix) for suffix in ("", "-wal", "-shm")]
    paths.append(db.with_name(f"{db.name}.send-lock"))
    paths += sorted(db.parent.glob("mailbot-backup-*.db"))
    if config.outgoing.backend == "maildir" and config.outgoing.path is not None:
        outbox = config.outgoing.path
        paths += [outbox, *(outbox / sub for sub in ("tmp", "new", "cur"))]
        paths += sorted(p for sub in ("new", "cur") for p in (outbox / sub).glob("*"))
    return [p for p in paths if p.exists()]


def _file_modes(config: Config) -> str:
    """Warns on each of `private_paths` that group or others may read (mailbot creates them
    0600/0700; a wider one was made by an older version, by hand, or by another program)."""
    found = private_paths(config)
    wide = [(p, mode) for p in found if (mode := too_open(p)) is not None]
    if wide:
        shown = ", ".join(f"{p} {mode}" for p, mode in wide[:5])
        more = f" and {len(wide) - 5} more" if len(wide) > 5 else ""
        raise _Warning(
            f"readable by other users on this host: {shown}{more}; "
            "chmod 600 the files and 700 the folders (mailbot creates them so)"
        )
    return f"{len(found)} files and folders, none readable by other users"


def _credential_files(config: Config) -> list[Check]:
    """The files the server logins read (OAuth2 secrets and keys, CA bundles), offline too:
    a missing one fails; a secret readable by group or others warns, since whoever reads it
    can read the mailboxes. No row when the config names none."""
    secrets: list[Path] = []
    bundles: list[Path] = []
    logins = [*config.mailboxes, config.outgoing]
    logins += [box.outgoing for box in config.mailboxes if box.outgoing is not None]
    for login in logins:
        if login.ca_file is not None:
            bundles.append(login.ca_file)
        oauth2 = login.oauth2
        if oauth2 is None:
            continue
        if oauth2.ca_file is not None:
            bundles.append(oauth2.ca_file)
        secrets += [
            path
            for path in (
                oauth2.client_secret_file,
                oauth2.certificate_file,
                oauth2.refresh_token_file,
                oauth2.service_account_file,
            )
            if path is not None
        ]
    if not secrets and not bundles:
        return []
    missing = [str(p) for p in dict.fromkeys(secrets + bundles) if not p.is_file()]
    if missing:
        return [Check("credential files", FAIL, "not found: " + ", ".join(missing))]
    shared = [str(p) for p in dict.fromkeys(secrets) if p.stat().st_mode & 0o077]
    if shared:
        return [
            Check(
                "credential files",
                WARN,
                "readable by group or others (chmod 600): " + ", ".join(shared),
            )
        ]
    count = len(set(secrets)) + len(set(bundles))
    return [Check("credential files", OK, f"{count} found; secrets readable by their owner only")]


def run_checks(config: Config, now: datetime, servers: bool = True) -> list[Check]:
    """Every check, each its own row; reads only (no Context: opening one would create the
    database and stop at the first broken rules file)."""
    checks = [
        Check("configuration", OK, f"{config.source}"),
        *_rules(config),
        _row("trust: authserv_ids", lambda: _authserv_ids(config)),
        _row("clear-text passwords", lambda: _clear_text(config)),
        _row("file modes", lambda: _file_modes(config)),
        _templates(config),
        *_database(config, now),
        *_credential_files(config),
    ]
    if servers:
        resolve = Resolver()
        checks += [_mailbox(box, resolve) for box in config.mailboxes]
        checks += _outgoing(config, resolve)
    return checks


def backup(ctx: Context, target: Path) -> int:
    """SQLite's online backup: a consistent snapshot even while another process writes, with
    what each mailbox had given the store recorded in it (`store.restore.record_marks`), so
    that `mailbot restore` can have every mail stored later fetched again. Returns the size in
    bytes of the copy, which is checked before this returns."""
    from mailbot.store.restore import record_marks

    if target.exists():
        raise MailbotError(f"{target}: exists; give a new file name")
    result = backup_checked(ctx.store.conn, target)
    if result != "ok":
        raise MailbotError(f"{target}: the copy failed its integrity check: {result}")
    record_marks(target, ctx.now())
    return target.stat().st_size


def stamp(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S")
