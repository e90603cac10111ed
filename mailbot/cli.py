"""The `mailbot` command (SPEC §9). Each command parses options, calls the package, prints.

Only this module prints; everything it does can be done from Python.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

from mailbot.clock import Clock
from mailbot.config import load_config
from mailbot.console import aligned_lines, print_table
from mailbot.context import Context
from mailbot.desk.decisions import decide, staff_name
from mailbot.desk.staff import (
    add_note,
    add_staff,
    assign,
    backfill_search,
    disable_staff,
    find_cases,
    mark_handled,
    set_password,
)
from mailbot.errors import (
    ConfigError,
    MailbotError,
    MailboxError,
    SendError,
    StoreError,
)
from mailbot.intake.ingest import addressed_mailbox, store_raw_files
from mailbot.intake.mailboxes.maildir import deliver
from mailbot.intake.readout import as_text, read_out
from mailbot.intake.runner import process_pending, run_forever, run_once
from mailbot.longterm.outbound import (
    start_mismatch_inquiry,
    start_roadmap_campaign,
    unanswered_campaign,
)
from mailbot.outbox.send import flush_outbox, make_sender
from mailbot.outcome import remarks_of
from mailbot.states import action_label, status_label
from mailbot.store.registers import import_operators, import_sources
from mailbot.text import format_case_number

log = logging.getLogger("mailbot")

CASE_FIELDS = (
    "id",
    "number",
    "procedure",
    "status",
    "sender",
    "sender_name",
    "operator_code",
    "source_id",
    "mailbox",
    "subject",
    "problems",
    "reason",
    "received_at",
    "completed_at",
    "due",
    "updated_at",
    "version",
)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonLogFormatter(logging.Formatter):
    """`--log-format json`: one JSON object a line with the text line's fields (`time`,
    `level`, `logger`, `message`), the traceback as `exception` when there is one, and the
    access log's own fields (method, path, status, ms, user)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def _setup_logging(verbose: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter() if log_format == "json" else logging.Formatter(LOG_FORMAT)
    )
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _context(args: argparse.Namespace) -> Context:
    config = load_config(args.config)
    return Context.open(config, Clock.from_option(args.now))


def case_json(case: dict[str, Any]) -> dict[str, Any]:
    out = {key: case.get(key) for key in CASE_FIELDS}
    out["number"] = format_case_number(case["id"])
    out["owner"] = case.get("owner")
    out["remarks"] = remarks_of(case)
    return out


def cmd_run(args: argparse.Namespace) -> int:
    if not args.once:
        from mailbot.desk.web.monitoring import listening

        with _context(args) as ctx, listening(ctx.config, ctx.clock):
            code = run_forever(ctx)
        _leave_now(code)
    with _context(args) as ctx:
        summary = run_once(ctx)
    for result in summary.results:
        print(
            f"{result.key[:40]:40}  {result.procedure:28}  {result.outcome:18}  "
            f"{format_case_number(result.case_id) if result.case_id else '-'}"
        )
    print(
        f"received {summary.received}, processed {len(summary.results)}, "
        f"sent {summary.sent}, deferred {summary.deferred}"
        + (f", jobs: {', '.join(summary.jobs)}" if summary.jobs else "")
    )
    return 0


def _leave_now(code: int) -> NoReturn:
    """The daemon has stopped, with everything committed and its database closed: exit
    without the interpreter's teardown of every module and object, which takes seconds on a
    loaded machine (SIGTERM must end the run within 2 s) and gains nothing; logs and output
    are flushed first. A mailbox reader left blocked in a socket ends here too."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_ingest(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        store_raw_files(ctx, (Path(name).read_bytes() for name in args.files))
        results = process_pending(ctx)
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    for result in results:
        number = format_case_number(result.case_id) if result.case_id else "-"
        print(f"{number}  {result.procedure:28}  {result.outcome}")
    print(f"processed {len(results)}, sent {sent}, deferred {deferred}")
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    """Drop raw files into the configured Maildir inboxes, as an MTA would."""
    from mailbot.desk.deploy import sample_mails

    config = load_config(args.config)
    files = [*args.files, *(str(p) for p in sample_mails())] if args.samples else args.files
    if not files:
        raise UsageError("deliver: give FILE.eml … or --samples")
    for name in files:
        raw = Path(name).read_bytes()
        box = config.mailbox_for(addressed_mailbox(config, raw))
        if box is None or box.backend != "maildir" or box.path is None:
            raise MailbotError(f"{name}: its mailbox is not a Maildir in this configuration")
        unique = f"{hashlib.sha256(raw).hexdigest()[:24]}.{Path(name).stem}"
        deliver(box.path, raw, unique)
        print(f"{name} → {box.address}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    """Text mode: columns aligned by display width, cases waiting on us marked 要対応
    (`--json` is the stable interface of SPEC §9)."""
    if args.json:
        return _cases_json(args)
    with _context(args) as ctx:
        if args.search:
            backfill_search(ctx)
        cases = find_cases(ctx, open_only=args.open, search=args.search, owner=args.owner)
        names = {c["procedure"]: ctx.routing.name_of(c["procedure"]) for c in cases}
        waiting = ctx.store.waiting_on_us([c["id"] for c in cases])
        received = {c["id"]: _local_time(ctx, c["received_at"]) for c in cases}
    lines = aligned_lines(
        (
            "受付番号",
            "要対応",
            "手続き",
            "状態",
            "事業者コード",
            "担当",
            "受付日時",
            "期限",
            "不備",
            "差出人",
        ),
        (
            (
                format_case_number(case["id"]),
                "新着" if case["id"] in waiting else "",
                names.get(case["procedure"], case["procedure"]),
                status_label(case["status"]),
                case["operator_code"] or "-",
                case.get("owner") or "未割当",
                received[case["id"]],
                (case["due"] or "")[:10].replace("-", "/"),
                len(case["problems"]),
                case["sender"] or "",
            )
            for case in cases
        ),
    )
    print("\n".join(lines))
    print(f"{len(cases)}件（うち要対応 {len(waiting)}件）")
    return 0


def _local_time(ctx: Context, text: str | None) -> str:
    """A stored instant as staff read it: 2026/11/25 10:00, desk time."""
    if not text:
        return ""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(ctx.calendar.tz)
    return moment.strftime("%Y/%m/%d %H:%M")


def _cases_json(args: argparse.Namespace) -> int:
    """The JSON array streamed from the store, one case a line, each line what `case_json`
    makes of the case: 100,000 cases in under a second, never all in memory (the indenting
    encoder is pure Python and took 4 s)."""
    with _context(args) as ctx:
        hits = None
        if args.search:
            backfill_search(ctx)
            hits = ctx.store.search_cases(args.search) if args.search.strip() else None
        lines: list[str] = []
        separator = "\n"
        sys.stdout.write("[")
        fields = (*CASE_FIELDS, "owner", "remarks")
        for case_id, line in ctx.store.cases_as_json(fields, open_only=args.open, owner=args.owner):
            if hits is None or case_id in hits:
                lines.append(line)
            if len(lines) == 1000 or (lines and separator == "\n"):
                sys.stdout.write(separator + ",\n".join(lines))
                separator = ",\n"
                lines.clear()
        if lines:
            sys.stdout.write(separator + ",\n".join(lines))
        sys.stdout.write("]\n" if separator == "\n" else "\n]\n")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mailbot.desk.report import build_report, write_html, write_xlsx

    if not args.xlsx and not args.html:
        raise MailbotError("give --xlsx PATH and/or --html PATH")
    with _context(args) as ctx:
        report = build_report(ctx)
        if args.xlsx:
            write_xlsx(report, Path(args.xlsx))
        if args.html:
            write_html(report, Path(args.html), ctx)
    written = " and ".join(p for p in (args.xlsx, args.html) if p)
    print(f"queue report: {len(report.rows)} open case(s) written to {written}")
    return 0


def cmd_decisions_apply(args: argparse.Namespace) -> int:
    from mailbot.desk.decisions_apply import apply_workbook

    with _context(args) as ctx:
        results = apply_workbook(ctx, Path(args.file), by=args.by)
    print_table(
        ("行", "受付番号", "判断", "結果", "メール"),
        (
            (r.row, r.case_number, action_label(r.action), "反映済" if r.ok else r.why, r.mails)
            for r in results
        ),
        highlight=[not r.ok for r in results],
    )
    applied = sum(1 for r in results if r.ok)
    queued = sum(r.mails for r in results if r.ok)
    print(
        f"{applied} decision(s) applied, {len(results) - applied} refused; "
        f"{queued} mail(s) queued in the outbox ({QUEUED})"
    )
    return 0 if applied == len(results) else 1


def _case_id(text: str) -> int:
    digits = text.strip().upper().removeprefix("MB-")
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"{text!r} is not a case number (e.g. 12 or MB-000012)")
    return int(digits)


def cmd_retry(args: argparse.Namespace) -> int:
    from mailbot.intake.retry import retry

    if (args.case is None) == (not args.quarantined):
        raise UsageError("retry: name one case, or give --quarantined")
    with _context(args) as ctx:
        results = retry(ctx, None if args.quarantined else _case_id(args.case))
    print_table(
        ("mail", "procedure", "outcome", "case"),
        (
            (r.key, r.procedure, r.outcome, format_case_number(r.case_id) if r.case_id else "")
            for r in results
        ),
    )
    print(f"{len(results)} mail(s) taken through the pipeline again")
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    from mailbot.desk.casetext import case_text

    with _context(args) as ctx:
        case_id = _case_id(args.case)
        if not args.json:
            sys.stdout.write(case_text(ctx, case_id))
            return 0
        case = ctx.store.case(case_id)
        if case is None:
            raise MailbotError(f"no case {format_case_number(case_id)}")
        events = ctx.store.events(case_id)
        messages = ctx.store.case_messages(case_id)
        outbox = ctx.store.outbox_for_case(case_id)
    out = case_json(case) | {
        "data": case["data"],
        "events": events,
        "messages": messages,
        "outbox": outbox,
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=2, default=str)
    print()
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        result = decide(ctx, _case_id(args.case), args.action, args.arg, args.reason, by=args.by)
        goes = ctx.store.latest_outbox(result.case_id) if result.mails else None
    issued = f"{result.issued}。" if result.issued else ""
    if goes is None:
        mail = "参加者へのメールはありません"
    elif datetime.fromisoformat(goes["send_at"]) <= ctx.now():
        mail = "参加者へのメールは送信待ちです（`mailbot run` が送信します）"
    else:
        at = goes["send_at"][:16].replace("T", " ").replace("-", "/")
        mail = f"参加者へのメールは {at} に送信します（送信時間帯を待っています）"
    print(
        f"{format_case_number(result.case_id)}: {action_label(result.action)}"
        f" → {status_label(result.status)}。{issued}{mail}。"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        load = import_operators if args.register == "operators" else import_sources
        summary = load(ctx.store, Path(args.file), ctx.now())
    print(
        f"{args.register}: {summary.added} added, {summary.changed} changed, "
        f"{summary.unchanged} unchanged"
    )
    return 0


def cmd_campaign(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        deadline = parse_day(args.deadline, "--deadline")
        result = start_roadmap_campaign(ctx, deadline, args.year, by=staff_name(args.by))
    print(
        f"roadmap campaign: {result.planned} inquiry mail(s) queued in the outbox ({QUEUED}), "
        f"{result.already} already asked"
    )
    for line in result.skipped:
        print(f"  skipped {line}")
    return 0


def cmd_campaign_unanswered(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        rows = unanswered_campaign(ctx, args.year)
    print_table(
        (
            "case",
            "電源等識別番号",
            "事業者コード",
            "事業者名称",
            "電源等の名称",
            "連絡先",
            "期限",
            "督促",
        ),
        (
            (
                format_case_number(r["id"]),
                r["source_id"],
                r["operator_code"],
                r["operator_name"] or "",
                r["name"] or "",
                r["sender"] or "",
                (r["due"] or "")[:10],
                r["reminders"],
            )
            for r in rows
        ),
    )
    print(f"{len(rows)} target(s) have not answered")
    return 0


def cmd_inquiry(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        case_id = start_mismatch_inquiry(ctx, args.source, args.text, by=staff_name(args.by))
        when = _queued_notice(ctx, case_id)
    print(f"{format_case_number(case_id)}: mismatch inquiry planned; the mail {when}")
    return 0


QUEUED = "`mailbot run` sends them"


def _queued_notice(ctx: Context, case_id: int) -> str:
    """When the case's newest mail (its notice), queued in the outbox, goes out. Staff commands
    only queue: `mailbot run` sends, so they never need the mail server's password and a
    refused login never follows a decision already applied (issue 24)."""
    row = ctx.store.latest_outbox(case_id)
    if datetime.fromisoformat(row["send_at"]) <= ctx.now():
        return "waits in the outbox; `mailbot run` sends it now"
    return f"goes out at {row['send_at'][:16].replace('T', ' ')} (sending window)"


def cmd_assess(args: argparse.Namespace) -> int:
    from mailbot.longterm.supply_start import issue_supply_start_notice

    with _context(args) as ctx:
        issued = issue_supply_start_notice(
            ctx,
            args.source,
            args.from_fy,
            args.to_fy,
            parse_day(args.changed_on, "--changed-on"),
            parse_day(args.applied_on, "--applied-on") if args.applied_on else None,
            by=staff_name(args.by),
            reassessment=args.reassessment,
            replaced_kw=args.replaced_kw,
        )
        when = _queued_notice(ctx, issued.case_id)
    a = issued.assessment
    print(
        f"{format_case_number(issued.case_id)}: 通知No {issued.number}  {a.source_id}  "
        f"FY{a.from_fy}→FY{a.to_fy} ({a.direction})  result {a.result}"
    )
    print_table(
        ("delivery year", "auction", "affected", "penalty (yen)", "why"),
        (
            (i.delivery_year, i.auction, "yes" if i.affected else "no", f"{i.penalty_yen:,}", i.why)
            for i in a.impacts
        ),
    )
    if a.held_at_earliest:
        print(f"note: the 制度適用期間 stays at FY{a.period_start_fy} (seed 004 §2.1 注1)")
    print(f"total penalty: {a.total_penalty_yen:,} yen; the notice {when}")
    if issued.example_market:
        print("warning: rules/market.toml carries EXAMPLE values (example = true)")
    return 0


def cmd_assess_roadmap(args: argparse.Namespace) -> int:
    from mailbot.longterm.roadmap_assessment import issue_roadmap_notice

    with _context(args) as ctx:
        issued = issue_roadmap_notice(
            ctx,
            _case_id(args.case),
            args.result,
            by=staff_name(args.by),
            reassessment=args.reassessment,
        )
        when = _queued_notice(ctx, issued.case_id)
    print(
        f"{format_case_number(issued.case_id)}: 通知No {issued.number}  result {issued.result}"
        f"{'  (with the upload reminder)' if issued.upload_reminder else ''}; the notice {when}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from mailbot.doctor import FAIL, run_checks

    checks = run_checks(
        load_config(args.config), Clock.from_option(args.now).now(), servers=not args.offline
    )
    print_table(("check", "status", "detail"), ((c.name, c.status, c.detail) for c in checks))
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(checks)} checks, {len(failed)} failed")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from mailbot.doctor import backup, stamp

    with _context(args) as ctx:
        target = (
            Path(args.file)
            if args.file
            else ctx.config.database.with_name(f"mailbot-backup-{stamp(ctx.now())}.db")
        )
        size = backup(ctx, target)
    print(f"{target}: {size:,} bytes, integrity ok")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """`mailbot restore FILE` / `mailbot restore --refetch` (README, Operations)."""
    from mailbot.intake.restore import restore_backup, restore_refetch

    if (args.file is None) == (not args.refetch):
        raise UsageError("restore: give the backup FILE, or --refetch alone")
    config = load_config(args.config)
    if args.refetch:
        restored = restore_refetch(config, Clock.from_option(args.now))
    else:
        restored = restore_backup(config, Path(args.file), Clock.from_option(args.now))
        taken = restored.backup.marks[0].taken_at if restored.backup.marks else ""
        print(
            f"{config.database}: restored from {args.file}"
            f" (schema {restored.backup.schema_version}{', taken ' + taken if taken else ''})"
        )
        if restored.replaced is not None:
            print(f"the database it replaced is kept as {restored.replaced}")
    print_table(
        ("mailbox", "mail stored after the backup, waiting again", "note"),
        (
            (r.mailbox, "-" if r.error else r.waiting_again, r.error or "; ".join(r.notes))
            for r in restored.mailboxes
        ),
        highlight=[bool(r.error) for r in restored.mailboxes],
    )
    print(
        f"{restored.processed} mail(s) processed again; {restored.adopted} repl(ies) that"
        " went out after the backup recorded as sent, not sent again"
    )
    if restored.replaced_unreadable:
        print("the replaced database cannot be read: every reply to that mail goes again")
    if restored.unmatched:
        print(
            f"{len(restored.unmatched)} repl(ies) sent after the backup are not repeated as"
            " they were (a case number or the text differs); those participants get the new"
            " one with the next `mailbot run`:"
        )
        for sent in restored.unmatched:
            print(f"  {sent.sent_at[:16].replace('T', ' ')}  {sent.recipient}  {sent.subject}")
    failed = [r for r in restored.mailboxes if r.error]
    if failed:
        print("run `mailbot restore --refetch` once those mailboxes can be reached")
    else:
        print("next: mailbot run (it sends what is new)")
    return 1 if failed else 0


def cmd_parse(args: argparse.Namespace) -> int:
    """What the pipeline reads from one raw mail (SPEC §9), without storing it."""
    config = load_config(args.config)
    raw = Path(args.file).read_bytes()
    found = read_out(raw, config, addressed_mailbox(config, raw), Clock.from_option(args.now))
    print(json.dumps(found, ensure_ascii=False, indent=2) if args.json else as_text(found))
    return 0


def cmd_staff_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        raise UsageError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    with _context(args) as ctx:
        add_staff(ctx, args.login, args.name, password)
    print(f"staff account {args.login} ({args.name}) added")
    return 0


def cmd_staff_list(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        accounts = ctx.store.staff_list()
    print_table(
        ("login", "name", "state", "created"),
        (
            (a["login"], a["name"], "disabled" if a["disabled"] else "active", a["created_at"])
            for a in accounts
        ),
    )
    print(f"{len(accounts)} account(s)")
    return 0


def cmd_staff_password(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        raise UsageError("give the new password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    with _context(args) as ctx:
        set_password(ctx, args.login, password)
    print(f"staff account {args.login}: password changed, its sessions ended")
    return 0


def cmd_staff_disable(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        disable_staff(ctx, args.login)
    print(f"staff account {args.login} disabled: its sessions end at their next request")
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    if (args.login is None) == (not args.none):
        raise UsageError("give a staff login, or --none to leave the case without an owner")
    with _context(args) as ctx:
        case_id = _case_id(args.case)
        assign(ctx, case_id, None if args.none else args.login, by=staff_name(args.by))
    print(f"{format_case_number(case_id)}: 担当 {args.login or 'なし'}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        case_id = _case_id(args.case)
        add_note(ctx, case_id, args.text, by=staff_name(args.by))
    print(f"{format_case_number(case_id)}: note added (internal, never mailed)")
    return 0


def cmd_handled(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        case_id = _case_id(args.case)
        mark_handled(ctx, case_id, by=staff_name(args.by))
    print(f"{format_case_number(case_id)}: 参加者のメールを対応済みにしました（返信なし）")
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    from mailbot.desk.web.server import serve

    config = load_config(args.config)
    host = args.host or config.web.host
    port = args.port if args.port is not None else config.web.port
    print(f"mailbot web: the staff desk on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    return serve(config, args.now, host=host, port=port)


def add_desk_commands(sub: Any) -> None:
    """The staff desk (SPEC §10): accounts, owners, notes and the web server."""
    p = sub.add_parser("staff", help="staff accounts for the web desk")
    r = p.add_subparsers(dest="verb", required=True)
    a = r.add_parser("add", help="add an account (argon2 hash of the password)")
    a.add_argument("login")
    a.add_argument("--name", required=True, help="表示名 shown in the desk and the history")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.set_defaults(func=cmd_staff_add)
    a = r.add_parser("list", help="every account and whether it is active")
    a.set_defaults(func=cmd_staff_list)
    a = r.add_parser("password", help="set a new password (the account's sessions end)")
    a.add_argument("login")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.set_defaults(func=cmd_staff_password)
    a = r.add_parser("disable", help="lock an account out (its sessions end at once)")
    a.add_argument("login")
    a.set_defaults(func=cmd_staff_disable)

    p = sub.add_parser("assign", help="set a case's 担当 (owner)")
    p.add_argument("case", help="case number (12 or MB-000012)")
    p.add_argument("login", nargs="?", help="staff login")
    p.add_argument("--none", action="store_true", help="nobody has the case")
    p.add_argument("--by", help="staff name for the history (default: MAILBOT_STAFF or login)")
    p.set_defaults(func=cmd_assign)

    p = sub.add_parser("note", help="add an internal note to a case (never mailed)")
    p.add_argument("case", help="case number (12 or MB-000012)")
    p.add_argument("text")
    p.add_argument("--by", help="staff name for the history (default: MAILBOT_STAFF or login)")
    p.set_defaults(func=cmd_note)

    p = sub.add_parser(
        "handled", help="a participant's unanswered mail needs no reply: the case stops 要対応"
    )
    p.add_argument("case", help="case number (12 or MB-000012)")
    p.add_argument("--by", help="staff name for the history (default: MAILBOT_STAFF or login)")
    p.set_defaults(func=cmd_handled)

    p = sub.add_parser("web", help="serve the staff desk over HTTP (config [web])")
    p.add_argument("--host", help="address to listen on (default: [web] host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: [web] port, 8080)")
    p.set_defaults(func=cmd_web)


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.replace("/", "-"))
    except ValueError as exc:
        raise MailbotError(f"{option}: not a date (YYYY-MM-DD or YYYY/MM/DD): {text!r}") from exc


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """The options every command takes, before or after its name. Below the top level they
    default to SUPPRESS, so `mailbot --now X run` is not undone by the subcommand's default."""
    parser.add_argument(
        "--config",
        default=default,
        help="TOML file (default: config.toml, else the embedded default)",
    )
    parser.add_argument(
        "--now",
        default=default,
        help="ISO-8601 instant the whole run uses as its clock (or MAILBOT_NOW)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if default is argparse.SUPPRESS else False,
        help="log one line per mail; tracebacks on errors",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default if default is argparse.SUPPRESS else "text",
        help="log lines as text (default) or one JSON object a line",
    )


def _every_subparser(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_every_subparser(child)]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mailbot", description=__doc__.splitlines()[0])
    _global_options(parser, None)
    parser.add_argument("--version", action="version", version=f"mailbot {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="write a deployment folder: config.toml, rules/, templates/")
    p.add_argument("folder", help="the deployment folder (created when missing)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="fetch, process, send and run due jobs")
    p.add_argument("--once", action="store_true", help="do what is waiting, then exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ingest", help="take raw .eml files through the pipeline")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("parse", help="show what the pipeline reads from one .eml; stores nothing")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("deliver", help="drop .eml files into the configured Maildir inboxes")
    p.add_argument("files", nargs="*")
    p.add_argument("--samples", action="store_true", help="the sample mails shipped with mailbot")
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser("cases", help="list cases")
    p.add_argument("--json", action="store_true")
    p.add_argument("--open", action="store_true", help="open cases only")
    p.add_argument("--search", help="full text: subject, sender, company, body, file names")
    p.add_argument("--owner", help="担当: a staff login, or 'none' for cases nobody has")
    p.set_defaults(func=cmd_cases)
    add_desk_commands(sub)

    p = sub.add_parser("case", help="one case with its whole history")
    p.add_argument("case")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_case)

    p = sub.add_parser("decide", help="record a staff decision and plan the mail it needs")
    p.add_argument("case", help="case number (12 or MB-000012)")
    p.add_argument("action", help="issue-code, reject, objection-accepted, …")
    p.add_argument("arg", nargs="?", help="e.g. the code to issue")
    p.add_argument("--reason", help="told to the participant where the action needs one")
    p.add_argument("--by", help="staff name for the history (default: MAILBOT_STAFF or login)")
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser(
        "retry", help="take a case's mails, or every quarantined mail, through again"
    )
    p.add_argument("case", nargs="?", help="case number (12 or MB-000012)")
    p.add_argument("--quarantined", action="store_true", help="every quarantined mail")
    p.set_defaults(func=cmd_retry)

    p = sub.add_parser("campaign", help="outbound campaigns")
    c = p.add_subparsers(dest="kind", required=True)
    r = c.add_parser("roadmap", help="mail every roadmap target its 改訂要否の確認")
    r.add_argument("--deadline", required=True, help="answer deadline (YYYY-MM-DD)")
    r.add_argument(
        "--year", type=int, help="fiscal year of the campaign (default: the current one)"
    )
    r.add_argument("--by", help="staff name for the history")
    r.set_defaults(func=cmd_campaign)
    r = c.add_parser("unanswered", help="roadmap targets that have not answered yet")
    r.add_argument(
        "--year", type=int, help="fiscal year of the campaign (default: the current one)"
    )
    r.set_defaults(func=cmd_campaign_unanswered)

    p = sub.add_parser("assess", help="assessments that end in a notice (PDF) to the provider")
    c = p.add_subparsers(dest="kind", required=True)
    r = c.add_parser("supply-start", help="供給力提供開始時期の変更 (SPEC §4): assess and notify")
    r.add_argument("source", help="電源等識別番号")
    r.add_argument("--from-fy", type=int, required=True, help="start fiscal year before the change")
    r.add_argument("--to-fy", type=int, required=True, help="start fiscal year after the change")
    r.add_argument("--changed-on", required=True, help="the day the change was made (変更申請日)")
    r.add_argument("--applied-on", help="運用年月 shown on the notice (図2-6; － when not given)")
    r.add_argument(
        "--replaced-kw",
        type=int,
        default=0,
        help="capacity moved by 電源差替, left out of the penalty's 契約容量 (図2-2 ※2)",
    )
    r.add_argument("--reassessment", action="store_true", help="after an accepted objection")
    r.add_argument("--by", help="staff name for the history")
    r.set_defaults(func=cmd_assess)

    r = c.add_parser("roadmap", help="脱炭素化ロードマップの遵守: record the result and notify")
    r.add_argument("case", help="the roadmap answer case (12 or MB-000012)")
    r.add_argument("--result", required=True, help="pass or fail (合格 / 不合格)")
    r.add_argument("--reassessment", action="store_true", help="after an accepted objection")
    r.add_argument("--by", help="staff name for the history")
    r.set_defaults(func=cmd_assess_roadmap)

    p = sub.add_parser("doctor", help="check config, rules, servers, database and backlog")
    p.add_argument("--offline", action="store_true", help="skip the IMAP/SMTP connections")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("backup", help="a consistent copy of the database, safe while running")
    p.add_argument("file", nargs="?", help="new file (default: beside the database, dated)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser(
        "restore", help="put a backup in place; mail stored after it is fetched again"
    )
    p.add_argument("file", nargs="?", help="a file `mailbot backup` wrote")
    p.add_argument(
        "--refetch",
        action="store_true",
        help="only make the mail the database lacks waiting again (a mailbox unreachable before)",
    )
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("inquiry", help="inquiries to providers")
    c = p.add_subparsers(dest="kind", required=True)
    r = c.add_parser("mismatch", help="mail a 不一致に係る問合せ about a source")
    r.add_argument("source", help="電源等識別番号")
    r.add_argument("--text", required=True, help="what does not match")
    r.add_argument("--by", help="staff name for the history")
    r.set_defaults(func=cmd_inquiry)

    p = sub.add_parser("report", help="write the staff queue report (xlsx and/or HTML)")
    p.add_argument("--xlsx", help="workbook with a decision column to fill in")
    p.add_argument("--html", help="the same report as an HTML page")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("decisions", help="decisions filled into a report workbook")
    r = p.add_subparsers(dest="verb", required=True)
    a = r.add_parser("apply", help="apply the decision column of a filled-in report")
    a.add_argument("file")
    a.add_argument("--by", help="staff name for the history (default: MAILBOT_STAFF or login)")
    a.set_defaults(func=cmd_decisions_apply)

    for register in ("operators", "sources"):
        p = sub.add_parser(register, help=f"the {register} register")
        r = p.add_subparsers(dest="verb", required=True)
        i = r.add_parser("import", help="load a CSV (UTF-8) or .xlsx file; safe to repeat")
        i.add_argument("file")
        i.set_defaults(func=cmd_import, register=register)
    for child in _every_subparser(parser):
        _global_options(child, argparse.SUPPRESS)
    return parser


EXIT_OK = 0
EXIT_FAILED_CHECK = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_FILE = 4
EXIT_REFUSED = 5
EXIT_SERVICE = 6
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class UsageError(MailbotError):
    """The command line itself is wrong (exit 2, as argparse's own usage errors)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """One line on stderr, like every other failure, instead of usage text plus error."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailbot")
    except PackageNotFoundError:
        return "unknown"


def cmd_init(args: argparse.Namespace) -> int:
    from mailbot.desk.deploy import init_deployment

    folder = Path(args.folder)
    result = init_deployment(folder)
    print(
        f"{folder.resolve()}: {len(result.written)} file(s) written, "
        f"{len(result.kept)} kept as they were"
    )
    if "config.toml" in result.written:
        go = "" if folder.resolve() == Path.cwd() else f"cd {folder} && "
        print(f"next: {go}mailbot deliver --samples && mailbot run --once && mailbot cases")
    return 0


def exit_code(exc: BaseException) -> int:
    """The documented exit code of a failure (README, "Exit codes")."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG
    if isinstance(exc, StoreError | MailboxError | SendError):
        return EXIT_SERVICE
    if isinstance(exc, MailbotError):
        return EXIT_REFUSED
    if isinstance(exc, OSError) and exc.filename is not None:
        return EXIT_FILE
    if isinstance(exc, OSError):
        return EXIT_SERVICE
    return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, MailbotError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}"
    elif isinstance(exc, OSError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"
    return " ".join(text.split())


def _quiet_broken_pipe() -> int:
    """`mailbot cases --json | head`: the reader left; that is not our failure. Point stdout at
    /dev/null so the interpreter's final flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.log_format)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("mailbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            return _quiet_broken_pipe()
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        print(f"mailbot: {_one_line(exc)}", file=sys.stderr)
        return exit_code(exc)
