"""Scheduled jobs: the daily queue report, the staff digest and the reminders to participants.

What is due lives in SQLite, not in a timer: a job's occurrence (e.g. 08:30 on a business day)
is due when the last recorded run is older than it. The job's mails and its run record are
committed together, so a restart, a clock jump or a job that fires twice sends nothing twice.
The report and the digest describe one day: only today's occurrence is due (never at 00:58 for
yesterday, then again at 08:30 with the same date). A job with `catch_up = true` (the
reminders) also runs, once, for an occurrence missed while the desk was down. Reminders are also
claimed per occasion (`Store.claim_reminder`), so an occasion is reminded once even if the
schedule changes.
"""

from __future__ import annotations

import logging
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from mailbot.context import Context
from mailbot.errors import ConfigError, StoreError
from mailbot.mail.compose import OutgoingAttachment
from mailbot.outbox.planner import Thread, case_thread, reply_into, staff_mail
from mailbot.outcome import Reply
from mailbot.procedures import registry
from mailbot.rulefile import RulesFile
from mailbot.states import LABELS, Status
from mailbot.store.effect import Effect
from mailbot.store.registers import party
from mailbot.text import format_case_number

log = logging.getLogger(__name__)

LOOKBACK_DAYS = 21


@dataclass(frozen=True)
class JobSpec:
    name: str
    at: time
    business_days_only: bool
    options: dict[str, Any]
    catch_up: bool = False


def load_schedule(path: Path) -> list[JobSpec]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        specs = []
        for name, entry in data.get("jobs", {}).items():
            if name not in JOBS:
                raise ValueError(f"unknown job {name!r} (known: {', '.join(sorted(JOBS))})")
            hour, minute = str(entry["at"]).split(":")
            flags = {"at", "business_days_only", "catch_up"}
            options = {k: v for k, v in entry.items() if k not in flags}
            specs.append(
                JobSpec(
                    name=name,
                    at=time(int(hour), int(minute)),
                    business_days_only=bool(entry.get("business_days_only", True)),
                    options=options,
                    catch_up=bool(entry.get("catch_up", False)),
                )
            )
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from exc
    return specs


def latest_occurrence(ctx: Context, spec: JobSpec, now: datetime) -> datetime | None:
    """The most recent scheduled time of `spec` at or before `now` (Asia/Tokyo)."""
    tz = ctx.calendar.tz
    local = now.astimezone(tz)
    for back in range(LOOKBACK_DAYS):
        day = local.date() - timedelta(days=back)
        if spec.business_days_only and not ctx.calendar.is_business_day(day):
            continue
        at = datetime.combine(day, spec.at, tz)
        if at <= local:
            return at
    return None


def due_jobs(ctx: Context, specs: list[JobSpec], now: datetime) -> list[JobSpec]:
    due = []
    for spec in specs:
        occurrence = latest_occurrence(ctx, spec, now)
        if occurrence is None:
            continue
        if not spec.catch_up and occurrence.date() != _today(ctx, now):
            continue
        last = ctx.store.job_last_run(spec.name)
        if last is None or datetime.fromisoformat(last) < occurrence:
            due.append(spec)
    return due


Write = Callable[[], None]
"""What a job returns: it reads (the morning report of 30,000 open cases takes ~3 s) before the
write lock, which every other process waits for, and writes in the step it returns, inside
the transaction that records its run, after the job is found still due."""


def run_due_jobs(ctx: Context) -> list[str]:
    """Run each job whose latest occurrence has not run yet; returns the names that ran."""
    specs = SCHEDULE_RULES.load(ctx.config.rules_dir)
    now = ctx.now()
    ran = []
    for spec in due_jobs(ctx, specs, now):
        try:
            with ctx.store.snapshot():
                write = JOBS[spec.name](ctx, spec, now)
            with ctx.store.transaction():
                if not due_jobs(ctx, [spec], now):
                    continue  # another run (a `run --once` beside the daemon) did it just now
                write()
                ctx.store.set_job_run(spec.name, now)
        except StoreError:
            raise
        except Exception:
            log.exception(
                "job %s failed; it stays due and is tried again on the next run", spec.name
            )
            continue
        log.info("job %s ran at %s", spec.name, now.isoformat(timespec="minutes"))
        ran.append(spec.name)
    return ran


def _today(ctx: Context, now: datetime) -> date:
    return now.astimezone(ctx.calendar.tz).date()


def digest_rows(
    ctx: Context, today: date, within: int
) -> tuple[list[dict], list[dict], list[dict]]:
    """(overdue, due within `within` business days, waiting on us) among open cases: the
    first two soonest first, the last by how long the participant's mail has waited."""
    overdue, soon, waiting = [], [], []
    names: dict[str, str | None] = {}
    waits = ctx.store.waiting_on_us()
    for case in ctx.store.cases(open_only=True):
        due = date.fromisoformat(str(case["due"])[:10]) if case.get("due") else None
        if due is None and case["id"] not in waits:
            continue
        left = ctx.calendar.business_days_between(today, due) if due else None
        row = {
            "case_id": case["id"],
            "case_number": format_case_number(case["id"]),
            "procedure_name": ctx.routing.name_of(case["procedure"]),
            "party": party(ctx.store, case, names),
            "owner": case.get("owner") or "",
            "due": due,
            "days_left": left,
            "status_name": LABELS[Status(case["status"])],
            "waiting_since": _local_moment(ctx, waits.get(case["id"])),
            "url": ctx.config.case_url(case["id"]) or "",
        }
        if case["id"] in waits:
            waiting.append(row)
        if due is None:
            continue
        if due < today:
            overdue.append(row)
        elif left is not None and left <= within:
            soon.append(row)
    overdue.sort(key=lambda r: r["due"])
    soon.sort(key=lambda r: r["due"])
    waiting.sort(key=lambda r: (r["waiting_since"], r["case_id"]))
    return overdue, soon, waiting


def _local_moment(ctx: Context, text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment.astimezone(ctx.calendar.tz) if moment.tzinfo else moment


def _nothing() -> None:
    return None


def staff_digest(ctx: Context, spec: JobSpec, now: datetime) -> Write:
    if not ctx.config.staff_addresses:
        return _nothing
    today = _today(ctx, now)
    within = int(spec.options.get("due_within_business_days", 1))
    overdue, soon, waiting = digest_rows(ctx, today, within)
    if not overdue and not soon and not waiting:
        return _nothing
    context = {
        "today": today,
        "within": within,
        "overdue": overdue,
        "due_soon": soon,
        "waiting": waiting,
    }
    subject, body = ctx.renderer.mail("staff_digest", context)
    mails = [
        staff_mail(ctx, "staff_digest", address, subject, body, now)
        for address in ctx.config.staff_addresses
    ]
    return lambda: ctx.store.apply(Effect(now, mails=mails))


def daily_report(ctx: Context, spec: JobSpec, now: datetime) -> Write:
    if not ctx.config.staff_addresses:
        return _nothing
    from mailbot.desk.report import read_report, record_rows, render_html, write_xlsx

    report = read_report(ctx)
    today = _today(ctx, now)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"queue-{today.isoformat()}.xlsx"
        write_xlsx(report, path)
        workbook = path.read_bytes()
    attachment = OutgoingAttachment(
        f"未処理案件_{today.strftime('%Y%m%d')}.xlsx",
        workbook,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    subject, body = ctx.renderer.mail(
        "daily_report", {"today": today, "desk_url": ctx.config.web.base_url or ""}
    )
    html = render_html(report, ctx)
    mails = [
        staff_mail(
            ctx, "daily_report", address, subject, body, now, html=html, attachments=(attachment,)
        )
        for address in ctx.config.staff_addresses
    ]

    def write() -> None:
        record_rows(ctx, report)
        ctx.store.apply(Effect(now, mails=mails))

    return write


def _reminder_thread(ctx: Context, case: dict[str, Any]) -> Thread:
    """Remind in the thread the participant last saw: their own latest mail, else ours."""
    thread = case_thread(ctx, case["id"])
    if thread.message_id:
        return thread
    first = ctx.store.first_outbox(case["id"])
    if first is None:
        return thread
    return Thread(
        message_id=first["message_id"],
        recipient=thread.recipient,
        recipient_name=thread.recipient_name,
        subject=first["subject"],
        mailbox_address=thread.mailbox_address,
    )


def _remind(ctx: Context, case: dict[str, Any], occasion: str, reply: Reply, now: datetime) -> None:
    """Remind once per occasion, except a participant whose own mail nobody has answered
    (on this case or another): the occasion is left unclaimed, so the reminder goes on the
    first run after staff answer or mark the mail handled, if it is still due then."""
    thread = _reminder_thread(ctx, case)
    recipient = thread.recipient or case.get("sender") or ""
    if ctx.store.waiting_on_us([case["id"]]) or (
        recipient and ctx.store.recipient_waits_on_us(recipient)
    ):
        return
    if not ctx.store.claim_reminder(case["id"], occasion, now):
        return
    effect = Effect(now)
    if reply_into(ctx, effect, case, reply, thread) is not None:
        effect.event(case["id"], "bot", "reminder", occasion=occasion)
    ctx.store.apply(effect)


def _last_mail(ctx: Context, case_id: int, kind: str) -> tuple[str, date] | None:
    found = ctx.store.last_mail_of_kind(case_id, kind)
    if found is None:
        return None
    return found[0], datetime.fromisoformat(found[1]).date()


def participant_reminders(ctx: Context, spec: JobSpec, now: datetime) -> Write:
    """Each occasion is claimed as it is reminded, so all of it runs in the write step."""
    return lambda: _remind_participants(ctx, spec, now)


def _remind_participants(ctx: Context, spec: JobSpec, now: datetime) -> None:
    today = _today(ctx, now)
    after = int(spec.options.get("correction_unanswered_business_days", 5))
    handlers = registry()
    for case in ctx.store.cases(open_only=True):
        if case["status"] == Status.NEEDS_CORRECTION:
            last = _last_mail(ctx, case["id"], "correction")
            if last and ctx.calendar.business_days_between(last[1], today) >= after:
                reply = Reply(
                    "correction_reminder",
                    "correction_reminder",
                    {"problems": case["problems"], "requested_on": last[1]},
                    window=True,
                )
                _remind(ctx, case, f"correction:{last[0]}", reply, now)
        elif case["status"] == Status.AWAITING_REPLY:
            remind = getattr(handlers.get(case["procedure"]), "reminder", None)
            found = remind(case, today, ctx.for_handlers()) if remind else None
            if found is not None:
                _remind(ctx, case, found[0], found[1], now)


JOBS: dict[str, Callable[[Context, JobSpec, datetime], Write]] = {
    "daily_report": daily_report,
    "staff_digest": staff_digest,
    "participant_reminders": participant_reminders,
}


SCHEDULE_RULES = RulesFile("schedule.toml", load_schedule)
