"""The desk's pages and actions (Flask). One `Context` per request over the shared database.

Every route but /login needs a live session; every POST needs the session's CSRF token; every
case action carries the version of the case the page showed, so a form drawn before someone
else changed the case is refused instead of applied twice. Decisions go through
`mailbot.desk.decisions.decide`, the very code `mailbot decide` runs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from flask import Flask, Response, g, redirect, request
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, TemplateError
from markupsafe import Markup
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException, NotFound
from werkzeug.routing import IntegerConverter, ValidationError

from mailbot.clock import Clock
from mailbot.config import TEMPLATES_DIR, Config
from mailbot.context import Context
from mailbot.desk.decisions import StaleCase, decide
from mailbot.desk.mailview import received_mails
from mailbot.desk.preview import preview
from mailbot.desk.replies import case_fields, render_reply, reply_names
from mailbot.desk.report import AGE_OVERDUE_DAYS, AGE_SOON_DAYS
from mailbot.desk.staff import MAX_REPLY, add_note, assign, check_password, mark_handled, reply_and
from mailbot.desk.web import casepage, monitoring, security
from mailbot.desk.web.stats import build_stats, build_tables
from mailbot.desk.web.timeline import timeline
from mailbot.errors import MailbotError
from mailbot.mail.parse import parse
from mailbot.mail.render import jdate, jdatetime
from mailbot.procedures import registry
from mailbot.states import LABELS, OPEN, Status, action_label, allowed_actions, mail_kind
from mailbot.store.registers import party
from mailbot.text import format_case_number

log = logging.getLogger(__name__)

KEYS_JS = (TEMPLATES_DIR / "web" / "keys.js").read_text(encoding="utf-8")
"""The desk's one script (keyboard shortcuts), always the packaged copy, inlined into every
page and allowed by its hash alone: no other script, inline or fetched, can run."""
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'sha256-"
    + base64.b64encode(hashlib.sha256(KEYS_JS.encode("utf-8")).digest()).decode("ascii")
    + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_SIZE = 100
SHOWN_TEXT_CHARS = 200_000
MAX_BODY_BYTES = 256 * 1024
# A number from a URL or a form: up to 18 ASCII digits, so it fits SQLite's 64-bit integers
# (a larger id raised OverflowError binding it) and int() never sees 4,300+ digits (ValueError).
MAX_DIGITS = 18
ERRORS = {
    400: "リクエストの内容が正しくありません。ページを読み込み直してから、もう一度操作してください。",
    403: "この操作は受け付けられません（フォームの有効期限切れの可能性があります。ページを読み込み直してください）。",
    404: "ページが見つかりません。",
    405: "このページではその操作はできません。",
    413: "送信内容が大きすぎます。",
}
PRESENCE = timedelta(minutes=2)
VIEWS = {
    "": "対応が必要な案件（参加者の対応待ちを除く）",
    "waiting": "要対応（参加者からの新着メール）のみ",
    "participant": "参加者の対応待ち（修正依頼中・回答待ち）",
}
THROTTLED = (
    "ログインの失敗が続いたため、しばらく受け付けません。"
    "15分ほど待ってから、またはこのIDで以前ログインしたブラウザからお試しください。"
)
NOTICES = {
    "claimed": "担当になりました。",
    "assigned": "担当を変更しました。",
    "noted": "メモを追加しました（参加者には送信されません）。",
    "decided": "判断を記録しました。送信するメールは送信キューに入りました。",
    "replied": "返信を送信キューに入れました。",
    "handled": "参加者のメールを対応済みにしました（返信はしていません）。",
    "drafted": "返信の下書きを保存しました（送信はしていません）。",
}


def page_environment(config: Config) -> Environment:
    """The desk's page templates: the deployment's copy under `[paths] templates` where it has
    one, else the copy shipped in the package (a deployment made before the desk existed has
    no web/). `mailbot doctor` checks the pages through this very environment."""
    env = Environment(
        loader=ChoiceLoader(
            [FileSystemLoader(config.templates_dir), FileSystemLoader(TEMPLATES_DIR)]
        ),
        autoescape=True,
    )
    env.filters.update(jdate=jdate, jdatetime=jdatetime)
    env.globals.update(
        status_label=_status_label,
        format_case_number=format_case_number,
        mail_kind=mail_kind,
        keys_js=Markup(KEYS_JS),
    )
    return env


def create_app(config: Config, clock: Clock | None = None) -> Flask:
    clock = clock or Clock()
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.converters["int"] = RowNumber
    env = page_environment(config)
    web = config.web
    proxies = security.TrustedProxies.of(web.trusted_proxies)

    def ctx() -> Context:
        if "ctx" not in g:
            g.ctx = Context.open(config, clock)
        return g.ctx

    def render(name: str, status: int = 200, **values: Any) -> Response:
        values.setdefault("me", g.get("session"))
        html = env.get_template(f"web/{name}.html.j2").render(**values)
        return Response(html, status=status, mimetype="text/html")

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        opened = g.pop("ctx", None)
        if opened is not None:
            opened.close()

    def _proxy_login() -> str | None:
        if not web.trusted_user_header or not proxies.trusts(request.remote_addr):
            return None
        return request.headers.get(web.trusted_user_header) or None

    def _client() -> str:
        return proxies.client(request.remote_addr, request.headers.getlist("X-Forwarded-For"))

    monitoring.add_access_log(app)
    monitoring.add_routes(app, config, clock)

    @app.before_request
    def _authenticate() -> Response | None:
        if request.endpoint in monitoring.PUBLIC_ENDPOINTS:
            return None
        g.session = None
        g.new_cookie = None
        token = request.cookies.get(security.SESSION_COOKIE)
        session = security.current_session(ctx(), token, web)
        proxied = _proxy_login()
        if proxied and (session is None or session.login != proxied):
            session = None
            if security.active_staff(ctx(), proxied) is not None:
                with ctx().store.transaction():
                    security.prune(ctx(), web)
                token, _csrf = security.start_session(ctx(), proxied)
                session = security.current_session(ctx(), token, web)
                g.new_cookie = token
        g.session = session
        if request.endpoint == "login":
            return None
        if session is None:
            return redirect("/login", code=303)
        if request.method == "POST" and not security.same(request.form.get("csrf"), session.csrf):
            raise Forbidden()
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        if g.get("new_cookie"):
            _set_session_cookie(response, g.new_cookie)
        return response

    def _set_session_cookie(response: Response, token: str) -> None:
        _set_cookie(response, security.SESSION_COOKIE, token, "/")

    def _set_cookie(
        response: Response, name: str, value: str, path: str, max_age: int | None = None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            secure=web.secure_cookies,
            samesite="Strict",
            path=path,
        )

    @app.errorhandler(HTTPException)
    def _error(exc: HTTPException) -> Response:
        code = exc.code or 500
        text = (ERRORS | {429: THROTTLED}).get(code, "エラーが発生しました。")
        return render("error", status=code, message=text)

    @app.errorhandler(Exception)
    def _failure(exc: Exception) -> Response:
        """A bug or a failed database: logged with its traceback, answered in the desk's own
        words (Flask's page is English and names the exception)."""
        log.exception("web desk: %s %s failed", request.method, request.path)
        return render("error", status=500, message="エラーが発生しました。")

    @app.route("/login", methods=["GET", "POST"], endpoint="login")
    def login() -> Response:
        if g.session is not None and request.method == "GET":
            return redirect("/cases")
        if request.method == "GET":
            return _login_page()
        if not security.same(
            request.form.get("csrf"), request.cookies.get(security.LOGIN_CSRF_COOKIE)
        ):
            raise Forbidden()
        name = request.form.get("login", "").strip()[:64]
        password = request.form.get("password", "")[:1024]
        device_cookie = request.cookies.get(security.DEVICE_COOKIE)
        device = security.known_device(ctx(), device_cookie, name)
        attempt = security.begin_attempt(ctx(), web, name, _client(), device)
        if attempt is None:
            refused = _login_page(THROTTLED, 429)
            refused.headers["Retry-After"] = str(int(security.THROTTLE_WINDOW.total_seconds()))
            return refused
        account = check_password(ctx(), name, password)
        if account is None:
            return _login_page("ログインIDまたはパスワードが違います。", 401)
        token, _csrf, device_cookie = security.succeeded(ctx(), attempt, device_cookie)
        response = redirect("/cases")
        _set_session_cookie(response, token)
        _set_cookie(
            response,
            security.DEVICE_COOKIE,
            device_cookie,
            "/login",
            max_age=security.DEVICE_DAYS * 86400,
        )
        response.delete_cookie(security.LOGIN_CSRF_COOKIE, path="/login")
        return response

    def _login_page(error: str | None = None, status: int = 200) -> Response:
        """Login CSRF is a double-submit cookie; an existing one is kept, so a second page
        load in the background (a favicon request redirected here) does not void the form."""
        csrf = request.cookies.get(security.LOGIN_CSRF_COOKIE) or security.new_token()
        response = render("login", status=status, csrf=csrf, error=error, me=None)
        _set_cookie(response, security.LOGIN_CSRF_COOKIE, csrf, "/login")
        return response

    @app.post("/logout")
    def logout() -> Response:
        with ctx().store.transaction():
            ctx().store.end_web_sessions(token_hash=g.session.token_hash)
        response = redirect("/login")
        response.delete_cookie(security.SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home() -> Response:
        return redirect("/cases")

    @app.get("/cases")
    def cases() -> Response:
        c = ctx()
        args = request.args
        owner = args.get("owner", "")
        query = args.get("q", "").strip()[:200]
        status = args.get("status", "")
        show = args.get("show", "open")
        view = args.get("view", "")
        if view not in VIEWS:
            view = ""
        filtered = query or status or owner or args.get("procedure") or show == "all"
        today = c.now().astimezone(c.calendar.tz).date()
        page = _page_number(args.get("page"))
        total, found = c.store.queue_page(
            today=today.isoformat(),
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            open_only=show != "all",
            ids=c.store.search_cases(query) if query else None,
            owner=g.session.login if owner == "me" else owner or None,
            status=status or None,
            procedure=args.get("procedure") or None,
            overdue_only=bool(args.get("overdue")),
            view=view or (None if filtered else "desk"),
            age_overdue_days=AGE_OVERDUE_DAYS,
        )
        last = max(1, -(-total // PAGE_SIZE))
        if page > last:
            return redirect(_page_link(last))
        left = functools.cache(lambda due: c.calendar.business_days_between(today, due))
        return render(
            "cases",
            rows=[_queue_row(c, case, today, left) for case in found],
            total=total,
            first=(page - 1) * PAGE_SIZE + 1 if found else 0,
            last_shown=(page - 1) * PAGE_SIZE + len(found),
            previous=_page_link(page - 1) if page > 1 else None,
            next=_page_link(page + 1) if page < last else None,
            page=page,
            pages=last,
            page_size=PAGE_SIZE,
            q=query,
            filters={
                "status": status,
                "procedure": args.get("procedure", ""),
                "owner": owner,
                "overdue": bool(args.get("overdue")),
                "show": show,
                "view": view,
            },
            views=list(VIEWS.items()),
            statuses=[(s.value, LABELS[s]) for s in Status],
            procedures=[(pid, c.routing.name_of(pid)) for pid in sorted(registry())],
            staff=c.store.staff_list(),
            age_soon=AGE_SOON_DAYS,
            age_overdue=AGE_OVERDUE_DAYS,
        )

    def _page_number(text: str | None) -> int:
        number = _whole(text)
        return number if number is not None and 0 < number < 10**6 else 1

    def _page_link(page: int) -> str:
        """This queue view's page `page`: the filters and the search stay in the link."""
        kept = [(k, v) for k, v in request.args.items(multi=True) if k != "page" and v]
        return "/cases?" + urlencode([*kept, ("page", str(page))])

    def _queue_row(
        c: Context,
        case: dict[str, Any],
        today: date | None = None,
        days_left: Callable[[date], int] | None = None,
    ) -> dict[str, Any]:
        """One queue line. A listing passes `today` and a cached `days_left` once for all its
        rows (3,000 open cases asked the clock and the calendar 3,000 times)."""
        today = today or c.now().astimezone(c.calendar.tz).date()
        days_left = days_left or (lambda d: c.calendar.business_days_between(today, d))
        due = date.fromisoformat(str(case["due"])[:10]) if case.get("due") else None
        left = days_left(due) if due else None
        open_case = Status(case["status"]) in OPEN
        waiting = case.get("waiting_since")
        anchor = _local_date(c, waiting or case["received_at"])
        age = (today - anchor).days if anchor and open_case and not due else None
        return {
            "id": case["id"],
            "number": format_case_number(case["id"]),
            "procedure": c.routing.name_of(case["procedure"]),
            "party": _party(c, case),
            "subject": case.get("subject") or "",
            "status": _status_label(case["status"]),
            "owner": case.get("owner") or "",
            "received": case["received_at"],
            "due": due,
            "days_left": left,
            "overdue": bool(open_case and due and due < today)
            or (age is not None and age >= AGE_OVERDUE_DAYS),
            "soon": bool(left is not None and 0 <= left <= 1)
            or (age is not None and AGE_SOON_DAYS <= age < AGE_OVERDUE_DAYS),
            "age_days": age,
            "waiting_since": waiting,
        }

    @app.get("/cases/<int:case_id>")
    def case_page(case_id: int) -> Response:
        return _case_page(case_id, notice=NOTICES.get(request.args.get("done", "")))

    def _case_page(
        case_id: int,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        """The case page. The reply box holds, in this order: the canned reply asked for
        (`?template=NAME`), else the staff member's kept draft, else nothing."""
        c = ctx()
        case = c.store.case(case_id)
        if case is None:
            raise NotFound()
        handler = registry().get(case["procedure"])
        actions = (
            allowed_actions(tuple(handler.actions), case["status"])
            if handler and Status(case["status"]) in OPEN
            else ()
        )
        case["waiting_since"] = c.store.waiting_on_us([case_id]).get(case_id)
        row = _queue_row(c, case)
        accounts = c.store.staff_list()
        login = g.session.login
        with c.store.transaction():
            c.store.saw_case(case_id, login, c.now())
        names = {a["login"]: a["name"] for a in accounts}
        others = c.store.case_viewers(case_id, c.now() - PRESENCE, besides=login)
        canned, reply_text = None, None
        wanted = request.args.get("template", "")
        if wanted and request.method == "GET":
            try:
                canned = render_reply(c.config, wanted, _reply_fields(c, case))
                reply_text = canned.body
            except KeyError:
                raise NotFound() from None
            except TemplateError as exc:
                error = f"定型文「{wanted}」を表示できません（{type(exc).__name__}: {exc}）"
        if reply_text is None:
            reply_text = c.store.draft(case_id, login) or ""
        mails = _mails(c, case_id)
        problems, remarks = casepage.loose_notes(case)
        return render(
            "case",
            latest=casepage.latest_incoming(mails),
            viewers=[f"{names.get(v, v)}（{v}）" for v in others],
            reply_text=reply_text,
            canned=canned,
            canned_names=[(n, _canned_title(c, n, case)) for n in reply_names(c.config)],
            form_rows=casepage.form_rows(case),
            loose_problems=problems,
            loose_remarks=remarks,
            status=status,
            case=case,
            row=row,
            number=format_case_number(case_id),
            procedure_name=c.routing.name_of(case["procedure"]),
            mails=mails,
            events=timeline(c, case_id, {a["login"]: a["name"] for a in accounts}),
            actions=[(a, action_label(a)) for a in actions],
            staff=[a for a in accounts if not a["disabled"]],
            notice=notice,
            error=error,
        )

    def _act(case_id: int, done: str, work: Any) -> Response:
        if ctx().store.case(case_id) is None:
            raise NotFound()
        try:
            work()
        except StaleCase as exc:
            return _case_page(case_id, error=_stale(exc), status=409)
        except MailbotError as exc:
            return _case_page(case_id, error=str(exc), status=409)
        return redirect(f"/cases/{case_id}?done={done}", code=303)

    def _version() -> int:
        """The case version the form was drawn at: a form without one, or with anything but
        a whole number, is no form of ours (400)."""
        number = _whole(request.form.get("version"))
        if number is None:
            raise BadRequest()
        return number

    @app.post("/cases/<int:case_id>/claim")
    def claim(case_id: int) -> Response:
        version = _version()
        return _act(
            case_id,
            "claimed",
            lambda: assign(
                ctx(), case_id, g.session.login, by=g.session.login, expected_version=version
            ),
        )

    @app.post("/cases/<int:case_id>/assign")
    def assign_to(case_id: int) -> Response:
        version = _version()
        owner = request.form.get("owner", "").strip() or None
        return _act(
            case_id,
            "assigned",
            lambda: assign(ctx(), case_id, owner, by=g.session.login, expected_version=version),
        )

    @app.post("/cases/<int:case_id>/note")
    def note(case_id: int) -> Response:
        text = request.form.get("text", "")
        return _act(case_id, "noted", lambda: add_note(ctx(), case_id, text, by=g.session.login))

    @app.post("/cases/<int:case_id>/handled")
    def handled(case_id: int) -> Response:
        version = _version()
        return _act(
            case_id,
            "handled",
            lambda: mark_handled(ctx(), case_id, by=g.session.login, expected_version=version),
        )

    @app.post("/cases/<int:case_id>/decide")
    def decision(case_id: int) -> Response:
        version = _version()
        action = request.form.get("action", "")
        arg = request.form.get("arg", "").strip() or None
        reason = request.form.get("reason", "").strip() or None

        def work() -> Any:
            return decide(
                ctx(),
                case_id,
                action,
                arg,
                reason,
                by=g.session.login,
                expected_version=version,
                reason_hint="「理由」欄に記入してください",
            )

        if request.form.get("step") == "preview":
            return _confirm(
                case_id,
                work,
                kind="decide",
                title=f"判断「{action_label(action)}」の確認",
                fields={"action": action, "arg": arg or "", "reason": reason or ""},
                version=version,
            )
        return _act(case_id, "decided", work)

    def _confirm(
        case_id: int,
        work: Callable[[], Any],
        *,
        kind: str,
        title: str,
        fields: dict[str, str],
        version: int | None,
    ) -> Response:
        """The confirmation step: what `work` would mail, and when, before it is done."""
        c = ctx()
        case = c.store.case(case_id)
        if case is None:
            raise NotFound()
        try:
            mails = preview(c, work)
        except StaleCase as exc:
            return _case_page(case_id, error=_stale(exc), status=409)
        except MailbotError as exc:
            return _case_page(case_id, error=str(exc), status=409)
        return render(
            "confirm",
            case=case,
            number=format_case_number(case_id),
            kind=kind,
            title=title,
            fields=fields,
            version=version,
            mails=mails,
            kind_label=mail_kind,
        )

    @app.post("/cases/<int:case_id>/reply")
    def answer(case_id: int) -> Response:
        """The typed text is kept as the staff member's draft first, so a refusal (409) or a
        reload shows it again; it is dropped once the reply is planned."""
        version = _version()
        text = request.form.get("text", "")[: MAX_REPLY * 2]
        claim = request.form.get("claim") == "1"
        close = request.form.get("then") == "close"
        c, login = ctx(), g.session.login
        if c.store.case(case_id) is None:
            raise NotFound()
        with c.store.transaction():
            c.store.save_draft(case_id, login, text, c.now())

        def work() -> Any:
            return reply_and(
                c, case_id, text, by=login, expected_version=version, claim=claim, close=close
            )

        if request.form.get("step") == "draft":
            return redirect(f"/cases/{case_id}?done=drafted#reply", code=303)
        if request.form.get("step") == "preview":
            return _confirm(
                case_id,
                work,
                kind="reply",
                title="返信の確認",
                fields={
                    "text": text,
                    "claim": "1" if claim else "",
                    "then": request.form.get("then", ""),
                },
                version=version,
            )

        def send() -> None:
            work()
            with c.store.transaction():
                c.store.drop_draft(case_id, login)

        return _act(case_id, "replied", send)

    @app.get("/cases/<int:case_id>/<any(in, out):way>/<int:row>/<int:index>")
    def attachment(case_id: int, way: str, row: int, index: int) -> Response:
        c = ctx()
        if way == "in":
            found = c.store.message_raw_of_case(row, case_id)
        else:
            found = c.store.outbox_raw_of_case(row, case_id)
        if found is None:
            raise NotFound()
        files = parse(found).attachments
        if not 0 <= index < len(files):
            raise NotFound()
        file = files[index]
        response = Response(file.data, mimetype="application/octet-stream")
        ascii_name = "".join(
            ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in file.filename
        )
        response.headers["Content-Disposition"] = (
            f'attachment; filename="{ascii_name or "file"}"; '
            f"filename*=UTF-8''{quote(file.filename, safe='')}"
        )
        return response

    @app.get("/stats")
    def stats() -> Response:
        workload, levels = build_tables(ctx())
        return render("stats", stats=build_stats(ctx()), workload=workload, levels=levels)

    return app


def _reply_fields(c: Context, case: dict[str, Any]) -> dict[str, Any]:
    account = c.store.staff(g.session.login)
    return case_fields(
        case,
        case_number=format_case_number(case["id"]),
        procedure_name=c.routing.name_of(case["procedure"]),
        party=_party(c, case),
        staff_name=account["name"] if account else g.session.login,
    )


def _canned_title(c: Context, name: str, case: dict[str, Any]) -> str:
    try:
        return render_reply(c.config, name, _reply_fields(c, case)).title
    except Exception:
        return f"{name}（表示できません）"


def _stale(exc: StaleCase) -> str:
    """The refusal of a form drawn before the case changed, in the words of the page."""
    return (
        f"{format_case_number(exc.case_id)}は、このページを表示した後に更新されています"
        f"（他の方の操作や新しいメールの受付など。版 {exc.expected} → {exc.actual}）。"
        "この操作は反映していません。ページを読み込み直して最新の内容を確認してから、"
        "もう一度操作してください。"
    )


def _status_label(status: str) -> str:
    try:
        return LABELS[Status(status)]
    except ValueError:
        return status


def _party(c: Context, case: dict[str, Any]) -> str:
    """Register look-ups are cached per request: a queue page of 100 rows is mostly a few
    operators, and each lookup is a query."""
    return party(c.store, case, g.setdefault("operator_names", {}))


def _mails(c: Context, case_id: int) -> list[dict[str, Any]]:
    """Every mail of the case, in and out, oldest first, as text with its attachments. Mails
    in are read from what was kept when they were processed (`desk.mailview`), their text up
    to SHOWN_TEXT_CHARS; mails out are ours and parsed."""
    out: list[dict[str, Any]] = [
        _received_view(m) for m in received_mails(c, case_id, SHOWN_TEXT_CHARS)
    ]
    for o in c.store.outbox_for_case(case_id):
        raw = c.store.outbox_raw(o["id"]) or b""
        view = _mail_view(bytes(raw), "out", o["id"], o["created_at"], o["state"])
        view |= {"kind": o["kind"], "send_at": o["send_at"], "sent_at": o["sent_at"]}
        out.append(view)
    out.sort(key=lambda v: (v["at"] or "", v["way"] == "out"))
    return out


def _received_view(m: dict[str, Any]) -> dict[str, Any]:
    if m["cut"]:
        text = m["text"] + (
            f"\n\n（本文が長いため、先頭の {SHOWN_TEXT_CHARS:,} 文字のみ表示しています。"
            "全文は mailbot case で確認できます。）"
        )
    else:
        text = m["text"]
    return {
        "way": "in",
        "row": m["id"],
        "at": m["received_at"],
        "state": m["state"],
        "subject": m["subject"],
        "from": m["from"],
        "to": m["to"],
        "text": text,
        "html": m["html"],
        "files": [(i, name, size) for i, (name, size, _type) in enumerate(m["files"])],
    }


def _mail_view(raw: bytes, way: str, row: int, at: str, state: str) -> dict[str, Any]:
    try:
        mail = parse(raw)
    except Exception as exc:
        return {
            "way": way,
            "row": row,
            "at": at,
            "state": state,
            "subject": "",
            "from": "",
            "to": "",
            "text": f"（このメールは読み取れませんでした: {type(exc).__name__}）",
            "files": [],
        }
    return {
        "way": way,
        "row": row,
        "at": at,
        "state": state,
        "subject": mail.subject,
        "from": f"{mail.from_name} <{mail.from_addr}>" if mail.from_name else mail.from_addr,
        "to": ", ".join(mail.to),
        "date": mail.date,
        "text": mail.text,
        "html": mail.content_type == "text/html",
        "files": [(i, a.filename, a.size) for i, a in enumerate(mail.attachments)],
    }


def _local_date(c: Context, text: str | None) -> date | None:
    """The local (desk) day of a stored instant."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(c.calendar.tz).date()


def _whole(text: str | None) -> int | None:
    """A page or version number from a request: up to MAX_DIGITS ASCII digits, else None
    (`"²".isdigit()` is true, and `int("²")` raises)."""
    if text and len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


class RowNumber(IntegerConverter):
    """Flask's `<int:…>` in the desk's URLs, bounded: an id of more than MAX_DIGITS digits
    matches no route (404) instead of reaching SQLite or int()."""

    def to_python(self, value: str) -> int:
        if len(value) > MAX_DIGITS:
            raise ValidationError()
        return int(super().to_python(value))
