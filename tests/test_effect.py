"""Issue 14, "stages return values; one write per mail": parse → route → check → plan only read
the store and return values; the store writes a mail's whole effect in one call."""

from __future__ import annotations

import hashlib
import inspect
import re
import sqlite3
from collections import Counter

import pytest

import mailbot.intake.pipeline as pipeline
from mailbot.context import Context
from mailbot.errors import StoreError
from mailbot.intake.runner import process_pending
from mailbot.mail.trust import load_trust_rules
from mailbot.outbox.send import flush_outbox, make_sender
from mailbot.procedures import registry
from mailbot.store import Store
from mailbot.text import format_case_number
from tests.support.desk import outbox
from tests.support.jpmail import build
from tests.support.samples import samples
from tests.test_trust import CORP, application, desk, store  # noqa: F401

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _bounce_of(message_id: str) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.takahashi-denryoku.co.jp\r\nTo: code@occto.or.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.1@mx.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n'
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; "
        + CORP.encode()
        + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: "
        + message_id.encode()
        + b"\r\n\r\n--b--\r\n"
    )


def test_every_kind_of_mail_is_written_by_one_store_call(
    desk: Context,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """A new case with its receipt, a second copy of that mail, a question in its thread, an out-of-office
    robot, a bounce of the receipt and a mail whose check raises: each mail's writes all happen
    inside exactly one `Store.apply`."""
    first = application()
    store(desk, first)
    process_pending(desk)
    flush_outbox(desk, make_sender(desk))  # only a mail that has left can come back bounced
    [receipt] = outbox(desk, "receipt")
    mid = receipt["message_id"]
    question = build(
        f"Re: {receipt['subject']}",
        "お世話になっております。コードの通知はいつ頃になりますでしょうか。",
        from_addr=CORP,
        in_reply_to=mid,
        references=(mid,),
    )
    robot = application(attachments=[], in_reply_to=mid, headers={"Auto-Submitted": "auto-replied"})
    failing = application("bad@example.net", message_id="<fails@x.co.jp>")
    mails = [first, question, robot, _bounce_of(mid), failing]

    applies: Counter[str] = Counter()
    stray: list[str] = []
    state = {"mail": None, "applying": False}
    real_apply, real_execute = desk.store.apply, desk.store.execute
    real_one, real_check = pipeline._process_one, pipeline.check_mail

    def apply(effect):
        applies[state["mail"]] += 1
        state["applying"] = True
        try:
            return real_apply(effect)
        finally:
            state["applying"] = False

    def execute(sql, params=()):
        if state["mail"] and not state["applying"] and sql.lstrip().upper().startswith(WRITES):
            stray.append(f"{state['mail']}: {sql.split()[0:3]}")
        return real_execute(sql, params)

    def one(ctx, stored, ready):
        state["mail"] = stored.key
        try:
            return real_one(ctx, stored, ready)
        finally:
            state["mail"] = None

    def check(ctx, stored, mail, route, rules):
        if mail.from_addr == "bad@example.net":
            raise ValueError("the check raised")
        return real_check(ctx, stored, mail, route, rules)

    monkeypatch.setattr(desk.store, "apply", apply)
    monkeypatch.setattr(desk.store, "execute", execute)
    monkeypatch.setattr(pipeline, "_process_one", one)
    monkeypatch.setattr(pipeline, "check_mail", check)
    desk.store.save_raw("code@occto.or.jp", [("t:copy", first)], desk.now())
    store(desk, *mails[1:])
    results = process_pending(desk)

    assert [(r.procedure, r.outcome) for r in results][:4] == [
        ("duplicate", "duplicate"),
        ("operator_code_application", "message"),
        ("ignored", "Auto-Submitted: auto-replied"),
        ("ignored", "delivery status report (bounce)"),
    ]
    assert stray == []
    keys = ["t:copy"] + [f"t:{hashlib.sha256(r).hexdigest()}" for r in mails[1:]]
    assert [applies[k] for k in keys] == [1, 1, 1, 1, 1]
    assert outbox(desk, "receipt")[0]["state"] == "bounced"
    assert results[-1].procedure == "quarantined"
    assert results[-1].outcome.startswith("ValueError: the check raised")


def test_deciding_a_mail_writes_nothing_and_its_reply_already_has_the_case_number(
    desk: Context,  # noqa: F811
):
    store(desk, application())
    [stored] = list(desk.store.pending_messages())
    changes = desk.store.conn.total_changes
    with desk.store.transaction():
        mail = pipeline.parse_stored(desk, stored, None)
        rules = load_trust_rules(desk.config.rules_dir)
        route = pipeline.route_mail(desk, stored, mail, rules)
        checked = pipeline.check_mail(desk, stored, mail, route, rules)
        effect, result = pipeline.plan_effect(desk, stored, mail, route, checked)
        assert desk.store.conn.total_changes == changes
        assert desk.store.cases() == [] and outbox(desk) == []
        assert effect.case is not None and effect.case.new
        [reply] = effect.mails
        assert format_case_number(effect.case.case_id) in reply.subject
        desk.store.apply(effect)
    [case] = desk.store.cases()
    assert case["id"] == effect.case.case_id == result.case_id
    [receipt] = outbox(desk, "receipt")
    assert receipt["subject"] == reply.subject and receipt["message_id"] == reply.message_id
    assert desk.store.events(case["id"])[0]["kind"] == "opened"


def test_a_case_read_back_is_the_case_the_reply_was_rendered_from(
    desk: Context,  # noqa: F811
):
    """`case_after` predicts what `Store.case` reads once the effect is written."""
    from mailbot.store.effect import case_after

    store(desk, application())
    [stored] = list(desk.store.pending_messages())
    with desk.store.transaction():
        mail = pipeline.parse_stored(desk, stored, None)
        rules = load_trust_rules(desk.config.rules_dir)
        route = pipeline.route_mail(desk, stored, mail, rules)
        checked = pipeline.check_mail(desk, stored, mail, route, rules)
        effect, _ = pipeline.plan_effect(desk, stored, mail, route, checked)
        desk.store.apply(effect)
    predicted = case_after(None, effect.case, effect.now)
    stored_case = desk.store.case(effect.case.case_id)
    assert predicted == stored_case


# --- handlers read through a view that cannot write ---------------------------------------


def _writers() -> set[str]:
    """Store's methods that write: their SQL inserts, updates or deletes, they open a
    transaction, or they call a method that does (to a fixed point)."""
    methods = {
        name: inspect.getsource(member)
        for name, member in inspect.getmembers(Store, inspect.isfunction)
    }
    found = {
        name
        for name, text in methods.items()
        if re.search(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b|self\.transaction\(", text)
    }
    while True:
        more = {
            name
            for name, text in methods.items()
            if any(re.search(rf"self\.{w}\(", text) for w in found)
        }
        if more <= found:
            return found | {"execute", "conn"}
        found |= more


def test_the_handlers_view_names_none_of_the_stores_writers(desk: Context):  # noqa: F811
    writers = _writers()
    assert {"apply", "create_case", "plan_mail", "finish_message", "add_event"} <= writers
    assert {"case", "operator_codes", "auto_replies_since"}.isdisjoint(writers)
    view = desk.for_handlers().store
    offered = {name for name in dir(view) if not name.startswith("__")}
    assert offered & writers == set()
    with pytest.raises(AttributeError):
        view.conn  # noqa: B018
    with pytest.raises(AttributeError):
        view.execute("DELETE FROM cases")


def test_every_handler_check_runs_on_a_database_it_cannot_write(
    desk: Context,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """The bundled samples through the pipeline with the connection read-only while a handler
    checks: nothing a handler does writes."""
    refused: list[str] = []
    ran: list[str] = []
    conn = desk.store.conn

    class ReadOnly:
        def __init__(self, handler):
            self._handler = handler

        def __getattr__(self, name):
            return getattr(self._handler, name)

        def check(self, incoming, ctx, case):
            ran.append(self._handler.id)
            conn.execute("PRAGMA query_only = ON")
            try:
                return self._handler.check(incoming, ctx, case)
            except sqlite3.OperationalError as exc:
                refused.append(f"{self._handler.id}: {exc}")
                raise
            finally:
                conn.execute("PRAGMA query_only = OFF")

    handlers = {pid: ReadOnly(h) for pid, h in registry().items()}
    monkeypatch.setattr(pipeline, "registry", lambda: handlers)
    store(desk, *(sample.raw for sample in samples()), application())
    results = process_pending(desk)
    assert refused == []
    assert len(ran) >= 6 and "operator_code_application" in ran
    assert "quarantined" not in [r.procedure for r in results[:8]]


def test_a_case_id_is_reserved_only_under_the_writers_lock(desk: Context):  # noqa: F811
    """Outside a transaction another process could take the id before the effect is applied."""
    with pytest.raises(StoreError, match="only inside a transaction"):
        desk.store.next_case_id()
    with desk.store.transaction():
        assert desk.store.next_case_id() == 1
