"""Who may try a password how often, and how long a session lives (SPEC §10 "login
throttling", "sessions"): the client's address behind a reverse proxy, throttling a stranger
cannot turn against staff, concurrent guesses, the absolute session lifetime, pruning, and
sessions ending with a password change or a disabled account. Flask's test client against a
real SQLite file; time moves by opening the desk again with a later clock."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mailbot.cli import main
from mailbot.clock import Clock, parse_instant
from mailbot.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from mailbot.context import Context
from mailbot.desk.staff import add_staff, set_password
from mailbot.desk.web import security
from mailbot.desk.web.app import create_app
from mailbot.desk.web.security import TrustedProxies
from tests.test_web import NOW, PASSWORDS, csrf_of

PROXY = "10.0.0.5"


@pytest.fixture
def staffed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two accounts, sato and suzuki, in a fresh database; no cases needed to log in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    ctx = open_ctx(tmp_path)
    try:
        add_staff(ctx, "sato", "佐藤", PASSWORDS["sato"])
        add_staff(ctx, "suzuki", "鈴木", PASSWORDS["suzuki"])
    finally:
        ctx.close()
    return tmp_path


def write_config(base: Path, web: str = "") -> Path:
    path = base / "config.toml"
    path.write_text(DEFAULT_CONFIG + "\n[web]\n" + web, encoding="utf-8")
    return path


def open_ctx(base: Path, at: str = NOW) -> Context:
    config = base / "config.toml"
    loaded = load_config(str(config)) if config.exists() else load_config(None)
    return Context.open(loaded, Clock(parse_instant(at)))


def desk_client(base: Path, at: str = NOW) -> FlaskClient:
    config = base / "config.toml"
    loaded = load_config(str(config)) if config.exists() else load_config(None)
    return create_app(loaded, Clock(parse_instant(at))).test_client()


def try_login(
    c: FlaskClient, name: str, password: str, peer: str = "127.0.0.1", xff: str | None = None
):
    """One login in browser `c`, logged out first (its other cookies kept)."""
    c.delete_cookie(security.SESSION_COOKIE)
    environ = {"REMOTE_ADDR": peer}
    headers = {"X-Forwarded-For": xff} if xff else {}
    page = c.get("/login", base_url="https://localhost", environ_base=environ, headers=headers)
    return c.post(
        "/login",
        data={"login": name, "password": password, "csrf": csrf_of(page.text)},
        base_url="https://localhost",
        environ_base=environ,
        headers=headers,
    )


def failures(base: Path) -> int:
    ctx = open_ctx(base)
    try:
        return ctx.store.login_failure_count()
    finally:
        ctx.close()


# the client's address


def test_the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy():
    none = TrustedProxies.of([])
    assert none.client("192.0.2.7", ["203.0.113.9"]) == "192.0.2.7"
    proxies = TrustedProxies.of(["10.0.0.5", "172.16.0.0/12", "::1"])
    # an untrusted peer's header is the sender's own word
    assert proxies.client("192.0.2.7", ["203.0.113.9"]) == "192.0.2.7"
    # behind the proxy: the right-most hop the proxy itself appended
    assert proxies.client("10.0.0.5", ["203.0.113.9"]) == "203.0.113.9"
    # what the client wrote to the left is not believed
    assert proxies.client("10.0.0.5", ["1.1.1.1, 2.2.2.2, 203.0.113.9"]) == "203.0.113.9"
    # a chain of trusted proxies is walked from the right; several headers are one list
    assert proxies.client("10.0.0.5", ["6.6.6.6, 203.0.113.9", "172.20.1.1"]) == "203.0.113.9"
    # ports and brackets as proxies write them; an IPv4-mapped peer is its IPv4 address
    assert proxies.client("::ffff:10.0.0.5", ["[2001:db8::7]:4431"]) == "2001:db8::/64"
    assert proxies.client("::1", ["203.0.113.9:50000"]) == "203.0.113.9"
    # an IPv6 client is its /64: one site cannot rotate through its own addresses
    assert none.client("2001:db8:0:1:aaaa::1", []) == none.client("2001:db8:0:1::2", [])
    assert none.client("2001:db8:0:2::1", []) == "2001:db8:0:2::/64"
    # every hop trusted, or no header: the proxy's own view is all there is
    assert proxies.client("10.0.0.5", []) == "10.0.0.5"
    assert proxies.client("10.0.0.5", ["172.16.0.1"]) == "172.16.0.1"


def test_trusted_proxies_must_be_addresses_and_the_header_needs_them(tmp_path):
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_config(DEFAULT_CONFIG + '[web]\ntrusted_proxies = ["proxy.local"]\n', "t", tmp_path)
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_config(DEFAULT_CONFIG + '[web]\ntrusted_user_header = "X-User"\n', "t", tmp_path)
    # "every address is our proxy" would believe any client's X-Forwarded-For and user header
    for everyone in ("0.0.0.0/0", "::/0"):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            parse_config(
                DEFAULT_CONFIG + f'[web]\ntrusted_proxies = ["{everyone}"]\n', "t", tmp_path
            )
    # a session longer than a year is a typo, and past timedelta's range every login failed
    for hours in ("1e11", "9000"):
        with pytest.raises(ConfigError, match="session_hours"):
            parse_config(DEFAULT_CONFIG + f"[web]\nsession_hours = {hours}\n", "t", tmp_path)
    # a TLS-only proxy without a user header is a plain deployment
    config = parse_config(
        DEFAULT_CONFIG + '[web]\ntrusted_proxies = ["10.0.0.0/8"]\n', "t", tmp_path
    )
    assert config.web.trusted_proxies == ("10.0.0.0/8",) and config.web.trusted_user_header is None


def test_behind_the_proxy_one_guesser_does_not_close_the_door_for_everyone(staffed):
    write_config(staffed, f'trusted_proxies = ["{PROXY}"]\n')
    guesser = desk_client(staffed)
    for n in range(30):
        r = try_login(guesser, "suzuki" if n % 2 else f"user{n}", "wrong", PROXY, "203.0.113.9")
        assert r.status_code in (401, 429)
    assert r.status_code == 429
    # every request came from the proxy; sato's own address is another client
    r = try_login(desk_client(staffed), "sato", PASSWORDS["sato"], PROXY, "198.51.100.20")
    assert r.status_code == 302
    # and the guesser is recorded under its own address, not the proxy's
    ctx = open_ctx(staffed)
    try:
        clients = {r[0] for r in ctx.store.execute("SELECT DISTINCT client FROM login_failures")}
    finally:
        ctx.close()
    assert clients == {"203.0.113.9"}


def test_without_a_trusted_proxy_a_forged_header_does_not_escape_the_throttle(staffed):
    guesser = desk_client(staffed)
    codes = [
        try_login(guesser, "sato", "wrong", "192.0.2.66", f"198.51.100.{n}").status_code
        for n in range(8)
    ]
    assert codes == [401] * 5 + [429] * 3


# throttling that strangers cannot turn against staff


def test_a_strangers_failures_lock_only_the_stranger(staffed):
    for _ in range(5):
        assert try_login(desk_client(staffed), "sato", "wrong", "203.0.113.9").status_code == 401
    assert try_login(desk_client(staffed), "sato", "wrong", "203.0.113.9").status_code == 429
    # sato from the office, never logged in from this browser before, is not locked
    assert (
        try_login(desk_client(staffed), "sato", PASSWORDS["sato"], "198.51.100.20").status_code
        == 302
    )


def test_a_distributed_guesser_closes_unknown_browsers_but_not_sato_s_own(staffed):
    own = desk_client(staffed)
    assert try_login(own, "sato", PASSWORDS["sato"], "198.51.100.20").status_code == 302
    for n in range(security.LIMITS.per_login):
        r = try_login(desk_client(staffed), "sato", "wrong", f"203.0.113.{n}")
        assert r.status_code == 401
    # a new browser, even with the right password, waits out the window
    r = try_login(desk_client(staffed), "sato", PASSWORDS["sato"], "198.51.100.21")
    assert r.status_code == 429 and "以前ログインしたブラウザ" in r.text
    # sato's own browser (it logged in before) still gets in with the right password
    assert try_login(own, "sato", PASSWORDS["sato"], "198.51.100.20").status_code == 302
    # a device cookie of another login does not count for sato
    other = desk_client(staffed)
    assert try_login(other, "suzuki", PASSWORDS["suzuki"]).status_code == 302
    assert try_login(other, "sato", PASSWORDS["sato"]).status_code == 429
    # after the window, unknown browsers may try again
    later = (parse_instant(NOW) + timedelta(minutes=16)).isoformat()
    r = try_login(desk_client(staffed, later), "sato", PASSWORDS["sato"], "198.51.100.21")
    assert r.status_code == 302


def test_a_known_browser_has_its_own_five_tries(staffed):
    own = desk_client(staffed)
    assert try_login(own, "sato", PASSWORDS["sato"]).status_code == 302
    codes = [try_login(own, "sato", "wrong").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]


def test_a_refused_attempt_writes_nothing(staffed):
    c = desk_client(staffed)
    for _ in range(5):
        try_login(c, "sato", "wrong")
    assert failures(staffed) == 5
    for _ in range(3):
        r = try_login(c, "sato", PASSWORDS["sato"])
        assert r.status_code == 429 and r.headers["Retry-After"] == "900"
    assert failures(staffed) == 5
    # nor did it start a session or hand out a browser cookie
    assert c.get_cookie(security.SESSION_COOKIE) is None
    assert c.get_cookie(security.DEVICE_COOKIE, path="/login") is None


def test_a_right_password_forgives_its_own_earlier_failures(staffed):
    c = desk_client(staffed)
    for _ in range(4):
        try_login(c, "sato", "wrong")
    assert try_login(c, "sato", PASSWORDS["sato"]).status_code == 302
    assert failures(staffed) == 0


def test_concurrent_failures_never_pass_the_limit(staffed):
    """Twelve wrong passwords at once from one client: the count and the reservation are one
    write transaction, so exactly five reach the password check."""
    app = desk_client(staffed).application
    start = threading.Barrier(12)
    codes: list[int] = []

    def guess() -> None:
        c = app.test_client()
        page = c.get("/login", base_url="https://localhost")
        start.wait()
        r = c.post(
            "/login",
            data={"login": "sato", "password": "wrong", "csrf": csrf_of(page.text)},
            base_url="https://localhost",
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [401] * 5 + [429] * 7
    assert failures(staffed) == 5


def test_a_stranger_cannot_keep_staff_out_of_their_browser_after_a_new_password(staffed):
    """Before, `staff password` forgot every known browser: a stranger with four addresses
    and a wrong guess every 6 s kept sato out of every browser for 40 minutes."""
    own = desk_client(staffed)
    assert try_login(own, "sato", PASSWORDS["sato"], "198.51.100.20").status_code == 302
    device = device_cookie(own)
    ctx = open_ctx(staffed)
    set_password(ctx, "sato", "a-brand-new-passphrase-9")
    ctx.close()
    start = parse_instant(NOW)
    refused = []
    for step in range(200):
        at = (start + timedelta(seconds=6 * step)).isoformat()
        try_login(desk_client(staffed, at), "sato", "x", f"203.0.113.{step % 4}")
        if step % 30 == 15:
            usual = desk_client(staffed, at)
            usual.set_cookie(security.DEVICE_COOKIE, device, path="/login")
            status = try_login(usual, "sato", "a-brand-new-passphrase-9", "198.51.100.20")
            refused.append(status.status_code)
    assert refused == [302] * len(refused), refused


# sessions


def device_cookie(c: FlaskClient) -> str:
    found = c.get_cookie(security.DEVICE_COOKIE, path="/login")
    assert found is not None
    return found.value


def cases_status(base: Path, c: FlaskClient, at: str) -> int:
    """GET /cases with `c`'s cookies on a desk whose clock says `at`."""
    later = desk_client(base, at)
    session = c.get_cookie(security.SESSION_COOKIE)
    assert session is not None
    later.set_cookie(security.SESSION_COOKIE, session.value)
    return later.get("/cases", base_url="https://localhost").status_code


def test_a_session_ends_at_its_absolute_lifetime_however_busy(staffed):
    write_config(staffed, "session_hours = 2\nsession_max_hours = 5\n")
    c = desk_client(staffed)
    assert try_login(c, "sato", PASSWORDS["sato"]).status_code == 302
    start = parse_instant(NOW)
    for hours in (1.5, 3, 4.5):  # never idle for 2 hours
        assert cases_status(staffed, c, (start + timedelta(hours=hours)).isoformat()) == 200
    assert cases_status(staffed, c, (start + timedelta(hours=5, minutes=1)).isoformat()) == 303


def test_an_idle_session_still_ends_at_the_idle_limit(staffed):
    write_config(staffed, "session_hours = 2\nsession_max_hours = 5\n")
    c = desk_client(staffed)
    assert try_login(c, "sato", PASSWORDS["sato"]).status_code == 302
    later = (parse_instant(NOW) + timedelta(hours=2, minutes=1)).isoformat()
    assert cases_status(staffed, c, later) == 303


def test_ended_sessions_and_old_failures_are_pruned_at_the_next_login(staffed):
    write_config(staffed, "session_hours = 2\nsession_max_hours = 5\n")
    for _ in range(3):
        assert try_login(desk_client(staffed), "sato", PASSWORDS["sato"]).status_code == 302
    try_login(desk_client(staffed), "suzuki", "wrong", "203.0.113.9")
    ctx = open_ctx(staffed)
    try:
        assert ctx.store.web_session_count() == 3 and ctx.store.login_failure_count() == 1
    finally:
        ctx.close()
    later = (parse_instant(NOW) + timedelta(hours=6)).isoformat()
    assert try_login(desk_client(staffed, later), "suzuki", PASSWORDS["suzuki"]).status_code == 302
    ctx = open_ctx(staffed, later)
    try:
        assert ctx.store.web_session_count("sato") == 0
        assert ctx.store.web_session_count("suzuki") == 1
        assert ctx.store.login_failure_count() == 0
    finally:
        ctx.close()


def test_a_new_password_ends_every_session_of_the_account(staffed, monkeypatch, capsys):
    c = desk_client(staffed)
    assert try_login(c, "sato", PASSWORDS["sato"]).status_code == 302
    other = desk_client(staffed)
    assert try_login(other, "suzuki", PASSWORDS["suzuki"]).status_code == 302
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("a-new-passphrase-3\n"))
    assert main(["--now", NOW, "staff", "password", "sato", "--password-stdin"]) == 0
    assert "sessions ended" in capsys.readouterr().out
    r = c.get("/cases", base_url="https://localhost")
    assert r.status_code == 303 and r.headers["Location"] == "/login"
    assert other.get("/cases", base_url="https://localhost").status_code == 200
    assert try_login(desk_client(staffed), "sato", PASSWORDS["sato"]).status_code == 401
    assert try_login(desk_client(staffed), "sato", "a-new-passphrase-3").status_code == 302


def test_a_new_password_keeps_the_known_browsers_and_disabling_forgets_them(staffed):
    """A browser record grants only its own throttle bucket, never access (a new password
    ends every session): kept, so a stranger cannot lock staff out of their usual browser
    after a password change; forgotten when the account is disabled."""
    c = desk_client(staffed)
    assert try_login(c, "sato", PASSWORDS["sato"]).status_code == 302
    cookie = device_cookie(c)
    ctx = open_ctx(staffed)
    try:
        assert security.known_device(ctx, cookie, "sato")
        set_password(ctx, "sato", "a-new-passphrase-3")
        assert security.known_device(ctx, cookie, "sato")
        assert ctx.store.web_session_count("sato") == 0
        with pytest.raises(Exception, match="at least"):
            set_password(ctx, "sato", "short")
        with pytest.raises(Exception, match="no staff account"):
            set_password(ctx, "nobody", "a-new-passphrase-3")
    finally:
        ctx.close()
    assert try_login(c, "sato", "a-new-passphrase-3").status_code == 302
    cookie = device_cookie(c)
    assert main(["--now", NOW, "staff", "disable", "sato"]) == 0
    ctx = open_ctx(staffed)
    try:
        assert ctx.store.web_session_count("sato") == 0
        assert security.known_device(ctx, cookie, "sato") is None
    finally:
        ctx.close()


def test_every_web_key_is_in_the_init_template_and_the_readme(tmp_path):
    from mailbot.config import SCHEMA
    from mailbot.desk.deploy import CONFIG

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    keys = SCHEMA["web"][1]
    assert "session_max_hours" in keys
    for key in keys:
        assert f"{key} = " in CONFIG, key
        assert f"{key} = " in readme, key
    loaded = parse_config(CONFIG, "init", tmp_path)
    assert loaded.web.session_max_hours == 12 and loaded.web.session_hours == 10
