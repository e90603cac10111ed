"""The `mailbot` command (SPEC §9). Each command parses options, calls the package, prints.

Only this module prints; everything it does can be done from Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from datetime import date
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from mailbot.clock import Clock
from mailbot.config import Config, load_config
from mailbot.console import print_table
from mailbot.context import Context
from mailbot.decisions import decide, staff_name
from mailbot.errors import MailbotError
from mailbot.mailboxes.maildir import deliver
from mailbot.outbound import start_mismatch_inquiry, start_roadmap_campaign, unanswered_campaign
from mailbot.registers import import_operators, import_sources
from mailbot.runner import process_pending, run_forever, run_once
from mailbot.send import flush_outbox, make_sender
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


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _context(args: argparse.Namespace) -> Context:
    config = load_config(args.config)
    return Context.open(config, Clock.from_option(args.now))


def _addressed_mailbox(config: Config, raw: bytes) -> str:
    """The configured mailbox a raw message was sent to (To, then Cc), else the first one."""
    headers = BytesHeaderParser().parsebytes(raw[:65536])
    for header in ("To", "Cc", "Delivered-To"):
        for _name, addr in getaddresses([str(v) for v in headers.get_all(header, [])]):
            box = config.mailbox_for(addr)
            if box:
                return box.address
    return config.mailboxes[0].address


def case_json(case: dict[str, Any]) -> dict[str, Any]:
    out = {key: case.get(key) for key in CASE_FIELDS}
    out["number"] = format_case_number(case["id"])
    return out


def cmd_run(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        if not args.once:
            return run_forever(ctx)
        summary = run_once(ctx)
    finally:
        ctx.close()
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


def cmd_ingest(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        for name in args.files:
            raw = Path(name).read_bytes()
            mailbox = _addressed_mailbox(ctx.config, raw)
            key = f"ingest:{hashlib.sha256(raw).hexdigest()}"
            ctx.store.save_raw(mailbox, [(key, raw)], ctx.now())
        results = process_pending(ctx)
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()
    for result in results:
        number = format_case_number(result.case_id) if result.case_id else "-"
        print(f"{number}  {result.procedure:28}  {result.outcome}")
    print(f"processed {len(results)}, sent {sent}, deferred {deferred}")
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    """Drop raw files into the configured Maildir inboxes, as an MTA would."""
    config = load_config(args.config)
    for name in args.files:
        raw = Path(name).read_bytes()
        box = config.mailbox_for(_addressed_mailbox(config, raw))
        if box is None or box.backend != "maildir" or box.path is None:
            raise MailbotError(f"{name}: its mailbox is not a Maildir in this configuration")
        unique = f"{hashlib.sha256(raw).hexdigest()[:24]}.{Path(name).stem}"
        deliver(box.path, raw, unique)
        print(f"{name} → {box.address}")
    return 0


def cmd_cases(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        cases = ctx.store.cases(open_only=args.open)
    finally:
        ctx.close()
    if args.json:
        json.dump([case_json(c) for c in cases], sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print_table(
        ("case", "procedure", "status", "operator", "due", "problems", "sender"),
        (
            (
                format_case_number(case["id"]),
                case["procedure"],
                case["status"],
                case["operator_code"] or "-",
                (case["due"] or "")[:10],
                len(case["problems"]),
                case["sender"] or "",
            )
            for case in cases
        ),
    )
    print(f"{len(cases)} case(s)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mailbot.report import build_report, write_html, write_xlsx

    if not args.xlsx and not args.html:
        raise MailbotError("give --xlsx PATH and/or --html PATH")
    ctx = _context(args)
    try:
        report = build_report(ctx)
        if args.xlsx:
            write_xlsx(report, Path(args.xlsx))
        if args.html:
            write_html(report, Path(args.html))
    finally:
        ctx.close()
    written = " and ".join(p for p in (args.xlsx, args.html) if p)
    print(f"queue report: {len(report.rows)} open case(s) written to {written}")
    return 0


def cmd_decisions_apply(args: argparse.Namespace) -> int:
    from mailbot.decisions_apply import apply_workbook

    ctx = _context(args)
    try:
        results = apply_workbook(ctx, Path(args.file), by=args.by)
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()
    print_table(
        ("row", "case", "decision", "result", "mails"),
        ((r.row, r.case_number, r.action, "applied" if r.ok else r.why, r.mails) for r in results),
        highlight=[not r.ok for r in results],
    )
    applied = sum(1 for r in results if r.ok)
    print(
        f"{applied} decision(s) applied, {len(results) - applied} refused; "
        f"{sent} mail(s) sent now, {deferred} waiting"
    )
    return 0 if applied == len(results) else 1


def _case_id(text: str) -> int:
    digits = text.strip().upper().removeprefix("MB-")
    if not (digits.isascii() and digits.isdigit()):
        raise MailbotError(f"{text!r} is not a case number (e.g. 12 or MB-000012)")
    return int(digits)


def cmd_retry(args: argparse.Namespace) -> int:
    from mailbot.retry import retry

    if (args.case is None) == (not args.quarantined):
        raise MailbotError("retry: name one case, or give --quarantined")
    ctx = _context(args)
    try:
        results = retry(ctx, None if args.quarantined else _case_id(args.case))
    finally:
        ctx.close()
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
    ctx = _context(args)
    try:
        case_id = _case_id(args.case)
        case = ctx.store.case(case_id)
        if case is None:
            raise MailbotError(f"no case {format_case_number(case_id)}")
        events = ctx.store.events(case_id)
        messages = ctx.store.case_messages(case_id)
        outbox = ctx.store.outbox_for_case(case_id)
    finally:
        ctx.close()
    if args.json:
        out = case_json(case) | {
            "data": case["data"],
            "events": events,
            "messages": messages,
            "outbox": outbox,
        }
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2, default=str)
        print()
        return 0
    print(f"{format_case_number(case_id)}  {ctx.routing.name_of(case['procedure'])}")
    for key in (
        "procedure",
        "status",
        "sender",
        "operator_code",
        "source_id",
        "subject",
        "received_at",
        "completed_at",
        "due",
        "reason",
    ):
        if case.get(key):
            print(f"  {key:14} {case[key]}")
    for problem in case["problems"]:
        print(f"  problem        {problem['field']}: {problem['message']}")
    print("messages:")
    for m in messages:
        print(
            f"  {m['received_at']}  in   {m['sender'] or '?'}  {m['subject'] or ''}  [{m['key']}]"
        )
    for o in outbox:
        print(
            f"  {o['created_at']}  out  {o['recipient']}  {o['subject']}"
            f"  ({o['kind']}, {o['state']})"
        )
    print("history:")
    for e in events:
        detail = ", ".join(f"{k}={v}" for k, v in e["detail"].items() if v not in (None, "", []))
        print(f"  {e['at']}  {e['actor']:10} {e['kind']:16} {detail}")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        result = decide(ctx, _case_id(args.case), args.action, args.arg, args.reason, by=args.by)
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()
    print(
        f"{format_case_number(result.case_id)}: {result.action} → {result.status}; "
        f"{result.mails} mail(s) planned, {sent} sent now, {deferred} deferred"
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        load = import_operators if args.register == "operators" else import_sources
        summary = load(ctx.store, Path(args.file), ctx.now())
    finally:
        ctx.close()
    print(
        f"{args.register}: {summary.added} added, {summary.changed} changed, "
        f"{summary.unchanged} unchanged"
    )
    return 0


def cmd_campaign(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        deadline = parse_day(args.deadline, "--deadline")
        result = start_roadmap_campaign(ctx, deadline, args.year, by=staff_name(args.by))
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()
    print(
        f"roadmap campaign: {result.planned} inquiry mail(s) planned, {result.already} already "
        f"asked, {sent} sent now, {deferred} waiting for the sending window"
    )
    for line in result.skipped:
        print(f"  skipped {line}")
    return 0


def cmd_campaign_unanswered(args: argparse.Namespace) -> int:
    ctx = _context(args)
    try:
        rows = unanswered_campaign(ctx, args.year)
    finally:
        ctx.close()
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
    ctx = _context(args)
    try:
        case_id = start_mismatch_inquiry(ctx, args.source, args.text, by=staff_name(args.by))
        sent, deferred = flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()
    print(
        f"{format_case_number(case_id)}: mismatch inquiry planned; {sent} sent now, {deferred} waiting"
    )
    return 0


def _send_notice(ctx: Context, case_id: int) -> str:
    """Send what is due now; say when the case's newest mail (its notice) goes out."""
    flush_outbox(ctx, make_sender(ctx))
    row = ctx.store.execute(
        "SELECT state, send_at FROM outbox WHERE case_id = ? ORDER BY id DESC LIMIT 1", (case_id,)
    ).fetchone()
    return "sent" if row["state"] == "sent" else f"goes out at {row['send_at'][:16]}"


def cmd_assess(args: argparse.Namespace) -> int:
    from mailbot.supply_start import issue_supply_start_notice

    ctx = _context(args)
    try:
        issued = issue_supply_start_notice(
            ctx,
            args.source,
            args.from_fy,
            args.to_fy,
            parse_day(args.changed_on, "--changed-on"),
            parse_day(args.applied_on, "--applied-on") if args.applied_on else None,
            by=staff_name(args.by),
            reassessment=args.reassessment,
        )
        when = _send_notice(ctx, issued.case_id)
    finally:
        ctx.close()
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
    print(f"total penalty: {a.total_penalty_yen:,} yen; the notice {when}")
    if issued.example_market:
        print("warning: rules/market.toml carries EXAMPLE values (example = true)")
    return 0


def cmd_assess_roadmap(args: argparse.Namespace) -> int:
    from mailbot.roadmap_assessment import issue_roadmap_notice

    ctx = _context(args)
    try:
        issued = issue_roadmap_notice(
            ctx,
            _case_id(args.case),
            args.result,
            by=staff_name(args.by),
            reassessment=args.reassessment,
        )
        when = _send_notice(ctx, issued.case_id)
    finally:
        ctx.close()
    print(
        f"{format_case_number(issued.case_id)}: 通知No {issued.number}  result {issued.result}"
        f"{'  (with the upload reminder)' if issued.upload_reminder else ''}; the notice {when}"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from mailbot.doctor import FAIL, run_checks

    ctx = _context(args)
    try:
        checks = run_checks(ctx, servers=not args.offline)
    finally:
        ctx.close()
    print_table(("check", "status", "detail"), ((c.name, c.status, c.detail) for c in checks))
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(checks)} checks, {len(failed)} failed")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from mailbot.doctor import backup, stamp

    ctx = _context(args)
    try:
        target = (
            Path(args.file)
            if args.file
            else ctx.config.database.with_name(f"mailbot-backup-{stamp(ctx.now())}.db")
        )
        size = backup(ctx, target)
    finally:
        ctx.close()
    print(f"{target}: {size:,} bytes, integrity ok")
    return 0


def parse_day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.replace("/", "-"))
    except ValueError as exc:
        raise MailbotError(f"{option}: not a date (YYYY-MM-DD or YYYY/MM/DD): {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailbot", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config", help="TOML file (default: config.toml, else the embedded default)"
    )
    parser.add_argument(
        "--now", help="ISO-8601 instant the whole run uses as its clock (or MAILBOT_NOW)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log one line per mail")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="fetch, process, send and run due jobs")
    p.add_argument("--once", action="store_true", help="do what is waiting, then exit")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("ingest", help="take raw .eml files through the pipeline")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("deliver", help="drop .eml files into the configured Maildir inboxes")
    p.add_argument("files", nargs="+")
    p.set_defaults(func=cmd_deliver)

    p = sub.add_parser("cases", help="list cases")
    p.add_argument("--json", action="store_true")
    p.add_argument("--open", action="store_true", help="open cases only")
    p.set_defaults(func=cmd_cases)

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
    r.add_argument("--applied-on", help="運用年月 shown on the notice (default: --changed-on)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except MailbotError as exc:
        print(f"mailbot: {exc}", file=sys.stderr)
        return 2
