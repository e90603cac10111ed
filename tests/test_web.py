"""The web desk over HTTP (SPEC §10), through Flask's test client against a real SQLite file:
who gets in, what a forged or stale form gets, what a participant's markup becomes, and that
the desk's actions are the CLI's actions under the staff member's login."""

from __future__ import annotations

import json
import re
from email import message_from_bytes
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mailbot.cli import main
from mailbot.clock import Clock, parse_instant
from mailbot.config import load_config
from mailbot.context import Context
from mailbot.desk.staff import add_staff, disable_staff
from mailbot.desk.web.app import create_app
from mailbot.states import Status
from tests.support.cycle import subject
from tests.support.jpmail import build
from tests.support.samples import SAMPLES_DIR

NOW = "2026-11-25T09:00"
PASSWORDS = {"sato": "sato-password-1", "suzuki": "suzuki-password-2"}
HOSTILE = "<script>alert(1)</script>"


def context() -> Context:
    return Context.open(load_config(None), Clock(parse_instant(NOW)))


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MB-000001 髙橋電力 (complete), MB-000002 みなとエナジー (flawed), MB-000003 a question,
    MB-000004 a mail whose subject, name, body and file name carry a <script>."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    hostile = tmp_path / "hostile.eml"
    hostile.write_bytes(
        build(
            f"ご相談 {HOSTILE}",
            f"本文です。{HOSTILE}\n<b>太字</b>",
            from_name=f"悪意 {HOSTILE}",
            from_addr="mallory@example.jp",
            charset="utf-8",
            attachments=[(f"{HOSTILE}.xlsx", b"not a workbook", "application/octet-stream")],
        )
    )
    names = ("01_operator_code_complete.eml", "02_operator_code_flawed.eml", "05_question.eml")
    files = [str(SAMPLES_DIR / n) for n in names] + [str(hostile)]
    assert main(["--now", NOW, "deliver", *files]) == 0
    assert main(["--now", NOW, "run", "--once"]) == 0
    ctx = context()
    try:
        add_staff(ctx, "sato", "佐藤", PASSWORDS["sato"])
        add_staff(ctx, "suzuki", "鈴木", PASSWORDS["suzuki"])
    finally:
        ctx.close()
    return tmp_path


def client(config_text: str | None = None, base: Path | None = None) -> FlaskClient:
    config = load_config(None)
    app = create_app(config, Clock(parse_instant(NOW)))
    return app.test_client()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def version_of(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html)
    assert found, "no version on the page"
    return found.group(1)


def login(c: FlaskClient, name: str, password: str | None = None) -> FlaskClient:
    page = c.get("/login", base_url="https://localhost")
    r = c.post(
        "/login",
        data={"login": name, "password": password or PASSWORDS[name], "csrf": csrf_of(page.text)},
        base_url="https://localhost",
    )
    assert r.status_code == 302 and r.headers["Location"] == "/cases", r.text
    return c


def get(c: FlaskClient, path: str):
    return c.get(path, base_url="https://localhost")


def post(c: FlaskClient, path: str, data: dict[str, str]):
    return c.post(path, data=data, base_url="https://localhost")


def case_json(number: str) -> dict:
    ctx = context()
    try:
        case = ctx.store.case(int(number))
        assert case is not None
        return case | {"events": ctx.store.events(case["id"])}
    finally:
        ctx.close()


def outbox_subjects() -> list[str]:
    ctx = context()
    try:
        return [r[0] for r in ctx.store.execute("SELECT subject FROM outbox ORDER BY id")]
    finally:
        ctx.close()


def test_nothing_but_login_answers_without_a_session(desk):
    """…and the probes of README "Operations" (/healthz; /metrics to loopback or a token),
    which show counts and times only (tests/test_monitoring.py)."""
    c = client()
    app = c.application
    routes = [
        r for r in app.url_map.iter_rules() if r.endpoint not in ("login", "healthz", "metrics")
    ]
    assert len(routes) >= 9
    for rule in routes:
        path = re.sub(r"<int:[a-z_]+>", "1", rule.rule).replace("<any(in, out):way>", "in")
        path = path.replace("1/1/1", "4/4/0")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            r = c.open(path, method=method, base_url="https://localhost")
            assert r.status_code in (302, 303), (method, path, r.status_code)
            assert r.headers["Location"] == "/login"
    assert get(c, "/login").status_code == 200


def test_session_cookie_is_secure_httponly_samesite(desk):
    c = client()
    page = c.get("/login", base_url="https://localhost")
    r = c.post(
        "/login",
        data={"login": "sato", "password": PASSWORDS["sato"], "csrf": csrf_of(page.text)},
        base_url="https://localhost",
    )
    cookie = next(v for v in r.headers.getlist("Set-Cookie") if v.startswith("mailbot_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # one script runs: the desk's own keyboard script, allowed by its hash (issue 26), no
    # 'unsafe-inline', no source to fetch scripts from
    policy = r.headers["Content-Security-Policy"]
    [scripts] = [d.strip() for d in policy.split(";") if d.strip().startswith("script-src")]
    assert re.fullmatch(r"script-src 'sha256-[A-Za-z0-9+/]{43}='", scripts)
    assert "default-src 'none'" in policy


def test_login_refuses_wrong_passwords_and_throttles(desk):
    c = client()
    page = get(c, "/login")
    # a login form without its token is refused
    r = post(c, "/login", {"login": "sato", "password": PASSWORDS["sato"]})
    assert r.status_code == 403
    for _ in range(5):
        page = get(c, "/login")
        r = post(c, "/login", {"login": "sato", "password": "wrong", "csrf": csrf_of(page.text)})
        assert r.status_code == 401 and "パスワードが違います" in r.text
    page = get(c, "/login")
    r = post(
        c, "/login", {"login": "sato", "password": PASSWORDS["sato"], "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 429
    assert get(c, "/cases").status_code == 303
    # another account from the same client is not locked by sato's failures
    login(c, "suzuki")


def test_post_without_or_with_a_wrong_csrf_token_is_403(desk):
    c = login(client(), "sato")
    page = get(c, "/cases/1")
    version = version_of(page.text)
    forged = ({"version": version}, {"version": version, "csrf": "forged"})
    for data in (*forged, {"version": version, "csrf": "é"}):
        for path in ("/cases/1/claim", "/cases/1/note", "/cases/1/decide", "/cases/1/reply"):
            r = post(c, path, data | {"text": "x", "action": "issue-code"})
            assert r.status_code == 403, path
    case = case_json("1")
    assert case["owner"] is None and case["status"] == "complete"
    assert not [e for e in case["events"] if e["actor"].startswith("staff:")]
    # a version or page written in other Unicode digits is refused, not a server error
    token = csrf_of(page.text)
    assert post(c, "/cases/1/claim", {"version": "²", "csrf": token}).status_code == 400
    assert get(c, "/cases?page=²").status_code == 200
    # a login form's token in non-ASCII text is refused too (nobody logged in yet)
    anonymous = client()
    get(anonymous, "/login")
    r = post(anonymous, "/login", {"login": "sato", "password": "x", "csrf": "é"})
    assert r.status_code == 403
    # the right token goes through
    r = post(c, "/cases/1/claim", {"version": version, "csrf": token})
    assert r.status_code == 303


def test_participant_markup_renders_as_text(desk):
    c = login(client(), "sato")
    queue = get(c, "/cases").text
    case = get(c, "/cases/4").text
    for html in (queue, case):
        assert HOSTILE not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>太字</b>" not in case and "&lt;b&gt;太字&lt;/b&gt;" in case
    # the file name too, and the download is never rendered inline
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.xlsx" in case
    link = re.search(r'href="(/cases/4/in/\d+/0)"', case)
    assert link
    r = get(c, link.group(1))
    assert r.status_code == 200 and r.data == b"not a workbook"
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "<" not in r.headers["Content-Disposition"].split("filename*=")[0]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    # another case's attachment cannot be reached through this case's number
    assert get(c, link.group(1).replace("/cases/4/", "/cases/1/")).status_code == 404


def test_a_disabled_account_is_out_at_its_next_request(desk):
    c = login(client(), "sato")
    assert get(c, "/cases").status_code == 200
    ctx = context()
    try:
        disable_staff(ctx, "sato")
    finally:
        ctx.close()
    r = get(c, "/cases")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    page = get(c, "/login")
    r = post(
        c, "/login", {"login": "sato", "password": PASSWORDS["sato"], "csrf": csrf_of(page.text)}
    )
    assert r.status_code == 401


def test_actions_land_in_the_history_under_the_login(desk, capsys):
    c = login(client(), "sato")
    page = get(c, "/cases/1").text
    token, version = csrf_of(page), version_of(page)
    assert post(c, "/cases/1/claim", {"csrf": token, "version": version}).status_code == 303
    r = post(c, "/cases/1/note", {"csrf": token, "text": "登記簿で名称を確認済み"})
    assert r.status_code == 303
    page = get(c, "/cases/1").text
    r = post(
        c,
        "/cases/1/decide",
        {"csrf": token, "version": version_of(page), "action": "issue-code", "arg": ""},
    )
    assert r.status_code == 303, r.text
    page = get(c, "/cases/1?done=decided").text
    assert "判断を記録しました" in page
    assert "佐藤（sato）" in page and "登記簿で名称を確認済み" in page
    case = case_json("1")
    assert case["owner"] == "sato" and case["status"] in ("decided", "closed")
    kinds = {e["kind"]: e["actor"] for e in case["events"]}
    assert kinds["assigned"] == kinds["note"] == kinds["decision"] == "staff:sato"
    assert any("事業者コードのお知らせ" in s for s in outbox_subjects())
    # the note went nowhere: no planned mail carries it
    ctx = context()
    try:
        raws = [bytes(r[0]) for r in ctx.store.execute("SELECT raw FROM outbox")]
    finally:
        ctx.close()
    assert not any("登記簿".encode() in raw for raw in raws)
    # the CLI sees the same history
    capsys.readouterr()
    assert main(["--now", NOW, "case", "MB-000001"]) == 0
    assert "staff:sato" in capsys.readouterr().out


def test_two_staff_at_once_the_second_on_a_changed_case_is_refused(desk):
    a = login(client(), "sato")
    b = login(client(), "suzuki")
    page_a, page_b = get(a, "/cases/1").text, get(b, "/cases/1").text
    assert version_of(page_a) == version_of(page_b)
    r = post(a, "/cases/1/claim", {"csrf": csrf_of(page_a), "version": version_of(page_a)})
    assert r.status_code == 303
    r = post(b, "/cases/1/claim", {"csrf": csrf_of(page_b), "version": version_of(page_b)})
    assert r.status_code == 409 and "このページを表示した後に更新されています" in r.text
    assert case_json("1")["owner"] == "sato"

    page_a, page_b = get(a, "/cases/1").text, get(b, "/cases/1").text
    decision = {"action": "issue-code", "arg": ""}
    r = post(
        a, "/cases/1/decide", decision | {"csrf": csrf_of(page_a), "version": version_of(page_a)}
    )
    assert r.status_code == 303
    r = post(
        b, "/cases/1/decide", decision | {"csrf": csrf_of(page_b), "version": version_of(page_b)}
    )
    assert r.status_code == 409
    # the page speaks of the page the decision was made on, not of the morning report
    error = re.search(r'<p class="error">(.*?)</p>', r.text, re.S)
    assert error and "MB-000001は、このページを表示した後に更新されています" in error.group(1)
    assert "report" not in error.group(1) and "レポート" not in error.group(1)
    assert sum("事業者コードのお知らせ" in s for s in outbox_subjects()) == 1
    decisions = [e for e in case_json("1")["events"] if e["kind"] == "decision"]
    assert [e["actor"] for e in decisions] == ["staff:sato"]


def test_a_decision_refused_by_the_rules_is_refused_the_same_way(desk, capsys):
    c = login(client(), "sato")
    page = get(c, "/cases/3").text  # 手続き不明: only `close`
    assert "コード発番・通知" not in page and "対応終了" in page
    r = post(
        c,
        "/cases/3/decide",
        {"csrf": csrf_of(page), "version": version_of(page), "action": "issue-code"},
    )
    assert r.status_code == 409
    capsys.readouterr()
    assert main(["--now", NOW, "decide", "MB-000003", "issue-code"]) == 5
    cli_error = capsys.readouterr().err.removeprefix("mailbot: ").strip()
    assert cli_error in r.text.replace("&#39;", "'").replace("&#34;", '"')


def test_a_reply_goes_through_the_outbox_with_the_case_number(desk):
    c = login(client(), "sato")
    page = get(c, "/cases/3").text
    text = "必要な書類は事業者マスタ申込書です。添付のとおりご確認ください。"
    r = post(
        c, "/cases/3/reply", {"csrf": csrf_of(page), "version": version_of(page), "text": text}
    )
    assert r.status_code == 303
    # a second send of the same (now stale) form is refused: nothing goes twice
    r = post(
        c, "/cases/3/reply", {"csrf": csrf_of(page), "version": version_of(page), "text": text}
    )
    assert r.status_code == 409
    # the desk's clock started at NOW and has run on since; the sender runs a minute later
    assert main(["--now", "2026-11-25T09:01", "run", "--once"]) == 0
    sent = [
        message_from_bytes(p.read_bytes())
        for p in (desk / "data" / "outbox" / "new").iterdir()
        if "MB-000003" in subject(p.read_bytes()) and "Re: " in subject(p.read_bytes())
    ]
    assert len(sent) == 1
    assert sent[0]["To"] == "info@shinki-sannyu.example.jp"
    # issue 26: "a human reply's subject and body read as a person's": the participant's own
    # subject, no internal label, no 自動受付システム, the staff member's name
    assert subject(bytes(sent[0])) == "【受付番号 MB-000003】Re: 容量市場の申込方法について"
    body = sent[0].get_payload(decode=True).decode(sent[0].get_content_charset())
    assert text in body and "受付窓口の佐藤です" in body and "担当：佐藤" in body
    assert "自動受付システム" not in body and "手続きを特定できない" not in body
    events = case_json("3")["events"]
    assert [e["actor"] for e in events if e["kind"] == "staff_reply"] == ["staff:sato"]
    assert "Re: 容量市場の申込方法について" in get(c, "/cases/3").text


def test_the_queue_filters_and_searches(desk):
    c = login(client(), "sato")
    numbers = lambda html: re.findall(r">(MB-\d{6})</a>", html)  # noqa: E731
    assert numbers(get(c, "/cases?q=髙橋電力").text) == ["MB-000001"]
    assert numbers(get(c, "/cases?q=髙橋").text) == ["MB-000001"]
    assert numbers(get(c, "/cases?q=必要な書類").text) == ["MB-000003"]
    assert numbers(get(c, "/cases?status=needs_correction").text) == ["MB-000002"]
    page = get(c, "/cases/2").text
    post(c, "/cases/2/claim", {"csrf": csrf_of(page), "version": version_of(page)})
    assert numbers(get(c, "/cases?owner=me").text) == ["MB-000002"]
    assert "MB-000002" not in numbers(get(c, "/cases?owner=none").text)
    assert numbers(get(c, "/cases?procedure=unrecognized").text) == ["MB-000003", "MB-000004"]
    # overdue first: on 4 Dec the complete application (due 2 Dec) is overdue, and so are the
    # two questions of 25 Nov, undated but 9 days old, red as the workbook colours them from
    # day 5 (issue 26: "Questions sink"): they turned red on 29 Nov, before the 2 Dec due date
    late = create_app(load_config(None), Clock(parse_instant("2026-12-04T09:00"))).test_client()
    login(late, "sato")
    queue = numbers(get(late, "/cases").text)
    assert queue[:3] == ["MB-000003", "MB-000004", "MB-000001"]
    assert numbers(get(late, "/cases?overdue=1").text) == ["MB-000003", "MB-000004", "MB-000001"]
    assert 'class="overdue"' in get(late, "/cases?procedure=unrecognized").text


def test_the_queue_is_paged_with_its_filters_kept_in_the_links(desk):
    """A whole year of cases in the "all" view comes a page at a time, counts shown, plain
    links (no JavaScript) that keep the search and filters."""
    ctx = context()
    try:
        with ctx.store.transaction():
            for n in range(246):
                ctx.store.create_case(
                    ctx.now(),
                    procedure="operator_code_application",
                    status=Status.CLOSED if n % 3 else Status.COMPLETE,
                    sender=f"user{n}@example.jp",
                    subject=f"一括申請 {n}",
                    received_at="2026-11-20T10:00:00+09:00",
                    due=None,
                    problems=[],
                )
    finally:
        ctx.close()
    c = login(client(), "sato")
    numbers = lambda html: re.findall(r">(MB-\d{6})</a>", html)  # noqa: E731
    first = get(c, "/cases?show=all&procedure=operator_code_application").text
    assert "248件中 1–100件目（1/3ページ）" in first  # MB-000001, MB-000002 and the 246
    assert 'rel="prev"' not in first
    link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert link == "/cases?show=all&procedure=operator_code_application&page=2"
    second = get(c, link).text
    assert "248件中 101–200件目（2/3ページ）" in second
    assert 'rel="prev"' in second and 'rel="next"' in second
    last = get(c, "/cases?show=all&procedure=operator_code_application&page=3").text
    assert "248件中 201–248件目（3/3ページ）" in last and 'rel="next"' not in last
    pages = [numbers(first), numbers(second), numbers(last)]
    assert [len(p) for p in pages] == [100, 100, 48]
    seen = [n for p in pages for n in p]
    assert len(set(seen)) == 248 and "MB-000003" not in seen
    # the 82 open undated cases came in 5 days ago: red, as the workbook colours them, so
    # overdue and first (issue 26); then the open ones by date: MB-000002 (undated, red from
    # 29 Nov) before MB-000001 (due 2 Dec); the closed ones last
    assert seen[:82] == [f"MB-{n + 5:06d}" for n in range(246) if n % 3 == 0]
    assert seen[82:84] == ["MB-000002", "MB-000001"]
    beyond = get(c, "/cases?show=all&procedure=operator_code_application&page=9")
    assert beyond.status_code == 302 and beyond.headers["Location"].endswith("page=3")
    searched = get(c, "/cases?q=一括申請&status=complete").text
    assert "82件中 1–82件目（1/1ページ）" in searched and 'rel="next"' not in searched
    assert len(numbers(searched)) == 82
    queue = get(c, "/cases?q=一括申請&page=1").text
    assert "82件中 1–82件目" in queue  # the open queue: closed cases are left out


def test_stats_draws_plots_with_numbers(desk):
    c = login(client(), "sato")
    html = get(c, "/stats").text
    assert html.count("<svg") == 5
    assert "状態別の未処理件数（計 4件）" in html
    assert "日別の受付件数" in html and ">4</text>" in html
    # MB-000001 is due 2 Dec; a code issued on 25 Nov keeps the service level
    page = get(c, "/cases/1").text
    post(
        c,
        "/cases/1/decide",
        {"csrf": csrf_of(page), "version": version_of(page), "action": "issue-code"},
    )
    html = get(c, "/stats").text
    assert "サービスレベル（期限のある案件）（計 1件）" in html
    kept = html.split(">期限内に対応</text>", 1)[1].split("</text>", 1)[0]
    assert kept.endswith(">1")


def test_trusted_proxy_header_only_from_trusted_peers(desk):
    config_path = desk / "config.toml"
    from mailbot.config import DEFAULT_CONFIG

    config_path.write_text(
        DEFAULT_CONFIG
        + '\n[web]\ntrusted_proxies = ["10.0.0.5"]\ntrusted_user_header = "X-Remote-User"\n',
        encoding="utf-8",
    )
    app = create_app(load_config(str(config_path)), Clock(parse_instant(NOW)))
    c = app.test_client()
    header = {"X-Remote-User": "sato"}
    r = c.get(
        "/cases",
        headers=header,
        base_url="https://localhost",
        environ_base={"REMOTE_ADDR": "10.0.0.6"},
    )
    assert r.status_code == 303
    r = c.get(
        "/cases",
        headers=header,
        base_url="https://localhost",
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert r.status_code == 200 and "佐藤（sato）" in r.text
    r = c.get(
        "/cases",
        headers={"X-Remote-User": "nobody"},
        base_url="https://localhost",
        environ_base={"REMOTE_ADDR": "10.0.0.5"},
    )
    assert r.status_code == 303


def test_cases_json_carries_the_owner(desk, capsys):
    c = login(client(), "sato")
    page = get(c, "/cases/2").text
    post(c, "/cases/2/claim", {"csrf": csrf_of(page), "version": version_of(page)})
    capsys.readouterr()
    assert main(["--now", NOW, "cases", "--json", "--owner", "sato"]) == 0
    assert [(c["number"], c["owner"]) for c in json.loads(capsys.readouterr().out)] == [
        ("MB-000002", "sato")
    ]


def test_the_week_of_test_week_done_from_the_web(tmp_path, monkeypatch):
    """tests/test_week.py's staff steps, taken in the browser's forms instead of the workbook:
    the code issued from the case page, a page drawn before a resubmission refused as stale,
    and the question answered from the desk (the CLI could only close it)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)

    def cli(now: str, *args: str) -> None:
        assert main(["--now", now, *args]) == 0

    def desk_at(now: str) -> FlaskClient:
        c = create_app(load_config(None), Clock(parse_instant(now))).test_client()
        return login(c, "sato")

    def mails(text: str) -> list[str]:
        folder = tmp_path / "data" / "outbox" / "new"
        return [
            subject(p.read_bytes()) for p in folder.iterdir() if text in subject(p.read_bytes())
        ]

    cli("2026-11-25T08:00", "operators", "import", str(SAMPLES_DIR / "operators.csv"))
    names = ("01_operator_code_complete.eml", "02_operator_code_flawed.eml", "05_question.eml")
    cli("2026-11-25T08:40", "deliver", *(str(SAMPLES_DIR / n) for n in names))
    cli("2026-11-25T08:45", "run", "--once")
    ctx = context()
    try:
        add_staff(ctx, "sato", "佐藤", PASSWORDS["sato"])
    finally:
        ctx.close()

    c = desk_at("2026-11-25T10:30")
    page = get(c, "/cases/1").text
    r = post(
        c,
        "/cases/1/decide",
        {"csrf": csrf_of(page), "version": version_of(page), "action": "issue-code"},
    )
    assert r.status_code == 303
    page = get(c, "/cases/3").text
    r = post(
        c,
        "/cases/3/reply",
        {
            "csrf": csrf_of(page),
            "version": version_of(page),
            "text": "必要書類は事業者マスタ申込書です。",
        },
    )
    assert r.status_code == 303
    cli("2026-11-25T10:31", "run", "--once")
    assert len(mails("事業者コードのお知らせ")) == 1
    assert len(mails("Re: 容量市場の申込方法について")) == 1

    for now in ("2026-11-26T08:50", "2026-11-27T09:10", "2026-11-30T08:31", "2026-12-01T09:30"):
        cli(now, "run", "--once")
    c = desk_at("2026-12-01T10:00")
    stale = get(c, "/cases/2").text
    cli("2026-12-02T09:05", "run", "--once")
    assert len(mails("ご修正のお願い（再送）")) == 1
    cli("2026-12-02T10:00", "deliver", str(SAMPLES_DIR / "10_corrected_resubmission.eml"))
    cli("2026-12-02T10:01", "run", "--once")
    c = desk_at("2026-12-02T11:00")
    r = post(
        c,
        "/cases/2/decide",
        {
            "csrf": csrf_of(get(c, "/cases").text),
            "version": version_of(stale),
            "action": "reject",
            "reason": "重複申請のため",
        },
    )
    assert r.status_code == 409
    assert mails("お申込みについてのご連絡") == []
    history = get(c, "/cases/1").text
    assert "事業者コードを発行" in history and "佐藤（sato）" in history


def test_logout_ends_the_session_on_the_server(desk):
    c = login(client(), "sato")
    page = get(c, "/cases").text
    r = post(c, "/logout", {"csrf": csrf_of(page)})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    ctx = context()
    try:
        assert ctx.store.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 0
    finally:
        ctx.close()
    assert get(c, "/cases").status_code == 303


def test_refusals_on_the_page_are_in_japanese(desk):
    """What staff meet on the page is said in Japanese, as the decision refusals are."""
    c = login(client(), "sato")
    page = get(c, "/cases/2").text
    token, version = csrf_of(page), version_of(page)
    refusals = [
        (post(c, "/cases/2/note", {"csrf": token, "text": "  "}), "メモが空です"),
        (
            post(c, "/cases/2/reply", {"csrf": token, "version": version, "text": ""}),
            "返信の本文が空です",
        ),
        (
            post(c, "/cases/2/assign", {"csrf": token, "version": version, "owner": "nobody"}),
            "担当者「nobody」は有効なアカウントではありません",
        ),
        (
            post(c, "/cases/2/assign", {"csrf": token, "version": version, "owner": ""}),
            "MB-000002はすでに担当者なしです",
        ),
    ]
    for r, text in refusals:
        assert r.status_code == 409
        error = re.search(r'<p class="error">(.*?)</p>', r.text, re.S)
        assert error and text in error.group(1), r.text
        words = error.group(1).replace("MB-", "").replace("nobody", "")
        assert not re.search(r"[A-Za-z]{3,}", words), error.group(1)
