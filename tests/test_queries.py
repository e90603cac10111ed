"""The queries that must stay fast at 100,000 cases (issue 17): `cases --json` streams what
`case_json` makes of each case, and the listings read through indexes, as SQLite's own
EXPLAIN QUERY PLAN shows for the statements the code really runs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mailbot.cli import case_json, main
from mailbot.config import DEFAULT_CONFIG
from mailbot.context import Context
from mailbot.desk.report import build_report
from mailbot.desk.staff import add_staff, assign
from mailbot.store import MIGRATIONS, Store
from mailbot.store.registers import operators_named, register_operator
from mailbot.store.sqlite import (
    _PROCESSING_STARTS,
    _STAFF_DESK,
    _operator_name_keys,
    run_script,
)
from tests.support.desk import make_desk
from tests.support.schema import database_before

NOW = "2026-11-25T09:00"
PROBLEM = {"field": "事業者名略称", "message": "末尾に「_容」を付けてください。"}
REMARK = {"field": "事業者名称", "message": "登記簿と照合してください。"}


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    """Closed and open cases, one with a problem and a staff remark, one with an owner, one
    with a subject that needs escaping."""
    (tmp_path / "config.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
    ctx = make_desk(tmp_path, NOW)
    now = ctx.now()
    add_staff(ctx, "sato", "佐藤", "a long password 1234")
    with ctx.store.transaction():
        make = ctx.store.create_case
        make(now, procedure="operator_code_application", status="closed", sender="a@x.jp")
        make(
            now,
            procedure="operator_code_application",
            status="needs_correction",
            sender="b@x.jp",
            sender_name="髙橋 一郎",
            subject='【容量市場向け事業者コード申請】"㈱髙橋電力"\t\\ 改行\n',
            operator_code="A0123",
            due="2026-12-01",
            problems=[PROBLEM],
            data={"remarks": [REMARK], "fields": {"事業者名称": "㈱髙橋電力"}},
        )
        make(now, procedure="question", status="awaiting_reply", sender="c@x.jp")
        make(now, procedure="question", status="ignored", sender="d@x.jp")
        make(now, procedure="question", status="held")
    assign(ctx, 3, "sato", by="sato")
    yield ctx
    ctx.close()


def listed(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> list[dict]:
    capsys.readouterr()
    assert (
        main(["--config", str(root / "config.toml"), "--now", NOW, "cases", "--json", *args]) == 0
    )
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        ((), lambda c: True),
        (("--open",), lambda c: c["status"] not in ("closed", "ignored")),
        (("--owner", "sato"), lambda c: c["owner"] == "sato"),
        (("--owner", "none", "--open"), lambda c: c["owner"] is None and c["status"] != "closed"),
        (("--search", "髙橋電力"), lambda c: c["id"] == 2),
    ],
)
def test_cases_json_streams_what_case_json_makes_of_each_case(desk: Context, capsys, args, wanted):
    expected = [
        json.loads(json.dumps(case_json(c), default=str))
        for c in desk.store.cases()
        if wanted(c) and (c["status"] != "ignored" or "--open" not in args)
    ]
    assert expected
    assert listed(capsys, desk.config.database.parent.parent, *args) == expected


def test_cases_json_carries_problems_remarks_and_owner(desk: Context, capsys):
    cases = {c["number"]: c for c in listed(capsys, desk.config.database.parent.parent)}
    assert cases["MB-000002"]["problems"] == [PROBLEM]
    assert cases["MB-000002"]["remarks"] == [REMARK]
    assert cases["MB-000002"]["subject"].endswith('"㈱髙橋電力"\t\\ 改行\n')
    assert cases["MB-000003"]["owner"] == "sato"
    assert cases["MB-000005"]["remarks"] == []


def test_an_empty_desk_lists_an_empty_array(tmp_path: Path, capsys):
    (tmp_path / "config.toml").write_text(DEFAULT_CONFIG, encoding="utf-8")
    make_desk(tmp_path, NOW).close()
    assert listed(capsys, tmp_path) == []
    assert main(["--config", str(tmp_path / "config.toml"), "cases", "--json", "--owner", "x"]) == 0
    assert capsys.readouterr().out == "[]\n"


def plans(ctx: Context, work) -> dict[str, str]:
    """Every statement `work` runs, with SQLite's query plan for it."""
    statements: list[str] = []
    ctx.store.conn.set_trace_callback(statements.append)
    try:
        work()
    finally:
        ctx.store.conn.set_trace_callback(None)
    out = {}
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            rows = ctx.store.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            out[sql] = " | ".join(r[3] for r in rows)
    return out


def test_open_cases_are_read_through_the_partial_index(desk: Context):
    for work in (
        lambda: desk.store.cases(open_only=True),
        lambda: list(desk.store.cases_as_json(("id",), open_only=True)),
    ):
        ((sql, plan),) = plans(desk, work).items()
        assert "USING INDEX cases_open" in plan, (sql, plan)
        assert "TEMP B-TREE" not in plan, (sql, plan)


def test_the_report_queries_use_indexes(desk: Context):
    found = plans(desk, lambda: build_report(desk))
    week = next(p for s, p in found.items() if "received_at >= " in s)
    assert "USING COVERING INDEX cases_received" in week
    first_reply = next(p for s, p in found.items() if "min(o.created_at)" in s)
    assert "USING COVERING INDEX outbox_case" in first_reply


def test_a_case_page_reads_its_mail_through_indexes(desk: Context):
    found = plans(desk, lambda: desk.store.outbox_for_case(2))
    assert found and all("outbox_case" in plan for plan in found.values()), found


def test_a_search_reads_only_the_cases_it_found(desk: Context):
    from mailbot.desk.staff import find_cases

    found: list[dict] = []
    queries = plans(desk, lambda: found.extend(find_cases(desk, search="髙橋電力")))
    assert [c["id"] for c in found] == [2]
    case_reads = {s: p for s, p in queries.items() if "FROM cases" in s}
    assert case_reads, queries
    for sql, plan in case_reads.items():
        assert "USING INTEGER PRIMARY KEY" in plan and "SCAN cases" not in plan, (sql, plan)
    assert find_cases(desk, search="髙橋電力", open_only=True)[0]["id"] == 2
    assert find_cases(desk, search="存在しない会社") == []


def test_an_operator_is_found_by_name_through_its_index(tmp_path: Path):
    """An application's 事業者名称 is looked up in the register on every mail: the name is
    compared as registered names are folded (width, spaces) through an index, not by reading
    every operator."""
    ctx = make_desk(tmp_path, NOW)
    with ctx.store.transaction():
        for n in range(300):
            register_operator(
                ctx.store, {"code": f"B{n:04d}", "name": f"株式会社 電力{n}"}, ctx.now()
            )
    found = plans(ctx, lambda: operators_named(ctx.store, "株式会社電力１２"))
    ((sql, plan),) = found.items()
    assert "USING INDEX operators_name_key" in plan, (sql, plan)
    assert [op["code"] for op in operators_named(ctx.store, "株式会社　電力１２")] == ["B0012"]
    ctx.close()


def test_the_name_keys_of_operators_registered_before_the_step_are_filled_in(tmp_path: Path):
    """A register from before schema step 12 gets its name keys when the database opens."""
    path = tmp_path / "m.db"
    database_before(path, _operator_name_keys)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(
        "INSERT INTO operators (code, name, updated_at) VALUES ('A0001', '髙橋 電力', '2026-01-01')"
    )
    conn.close()
    store = Store(path)
    assert [op["code"] for op in operators_named(store, "髙橋電力")] == ["A0001"]
    store.close()


def test_a_database_from_before_the_staff_desk_opens_at_todays_schema(tmp_path: Path):
    """Up to 34f1d6d, step 5 was what is step 6 now (the crash-loop breaker's counts, digests,
    report rows): such a database at version 5 got "table processing_starts already exists"
    and never the staff desk's tables. It now reaches the same schema as a new one."""
    old = tmp_path / "old.db"
    database_before(old, _STAFF_DESK)
    conn = sqlite3.connect(old, isolation_level=None)
    run_script(conn, _PROCESSING_STARTS)
    conn.execute("PRAGMA user_version = 5")
    conn.close()
    new = tmp_path / "new.db"

    def schema(path: Path) -> set[tuple[str, str]]:
        store = Store(path)
        assert store.schema_version == len(MIGRATIONS)
        rows = store.conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        columns = {
            (table, c[1])
            for (kind, table) in rows
            if kind == "table"
            for c in store.conn.execute(f"PRAGMA table_info('{table}')")
        }
        store.close()
        return {(r[0], r[1]) for r in rows} | columns

    assert schema(old) == schema(new)


def test_the_staff_alert_budget_counts_events_through_an_index(desk: Context):
    """Each refused reply or bounce counts the day's staff alerts over the whole desk: that
    count read every event ever written."""
    found = plans(desk, lambda: desk.store.count_events("staff_told_undeliverable", desk.now()))
    ((sql, plan),) = found.items()
    assert "USING COVERING INDEX events_kind_at" in plan, (sql, plan)
