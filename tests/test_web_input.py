"""Malformed requests to the web desk (issue 25, point 6): whatever a browser, a scanner or a
staff member's typo sends in the URL or a form, the desk answers 400 or 404 with a Japanese
page, never a 500."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import test_web
from tests.support.hostile import MALFORMED_REQUESTS
from tests.test_web import client, csrf_of, get, login, post

desk = test_web.desk

JAPANESE = re.compile(r"[ぁ-んァ-ヶ一-龯]")


def _japanese_refusal(r, status: int) -> None:
    assert r.status_code == status, r.text[:300]
    assert JAPANESE.search(r.text), r.text[:300]
    assert "Internal Server Error" not in r.text


def test_nul_bytes_in_the_search_are_a_search_not_a_server_error(desk):
    """FTS5 read the NULs as the end of the quoted phrase: "unterminated string", a 500."""
    c = login(client(), "sato")
    r = get(c, "/cases?q=%00%00%00")
    assert r.status_code == 200
    r = get(c, "/cases?q=%00%00%00%E9%AB%99%E6%A9%8B")
    assert r.status_code == 200


def test_a_page_number_of_5000_digits_is_page_one(desk):
    """int() refuses more than 4,300 digits (ValueError), which was a 500."""
    c = login(client(), "sato")
    r = get(c, "/cases?page=" + "9" * 5000)
    assert r.status_code == 200
    assert "MB-000001" in r.text


def test_a_version_of_5000_digits_is_400_in_japanese(desk):
    c = login(client(), "sato")
    page = get(c, "/cases/1")
    token = csrf_of(page.text)
    for version in ("9" * 5000, "²", "-1", ""):
        r = post(c, "/cases/1/claim", {"csrf": token, "version": version})
        _japanese_refusal(r, 400)
    r = post(c, "/cases/1/claim", {"csrf": token})
    _japanese_refusal(r, 400)


def test_a_case_number_past_sqlite_integers_is_404_in_japanese(desk):
    """SQLite holds 64-bit integers: a larger id raised OverflowError binding it (a 500)."""
    c = login(client(), "sato")
    for path in (
        "/cases/99999999999999999999",
        "/cases/9223372036854775808",
        "/cases/" + "9" * 5000,
        "/cases/1/in/99999999999999999999/0",
        "/cases/1/in/1/99999999999999999999",
        "/cases/1/out/1/99999999999999999999",
    ):
        _japanese_refusal(get(c, path), 404)
    token = csrf_of(get(c, "/cases/1").text)
    r = post(c, "/cases/99999999999999999999/claim", {"csrf": token, "version": "1"})
    _japanese_refusal(r, 404)


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [pytest.param(m, p, f, id=kind) for kind, m, p, f in MALFORMED_REQUESTS],
)
def test_the_hostile_corpus_of_requests_is_refused_in_japanese(desk, method, path, form):
    """A search or a page number is read leniently (200: NULs are no part of a term, a page
    past the last is page one); anything else is refused, in Japanese."""
    c = login(client(), "sato")
    if method == "GET":
        r = get(c, path)
    else:
        r = post(c, path, form | {"csrf": csrf_of(get(c, "/cases/1").text)})
    lenient = path.startswith("/cases?")
    assert r.status_code in ((200,) if lenient else (400, 404)), (path, r.status_code)
    if not lenient:
        _japanese_refusal(r, r.status_code)


def test_a_method_the_route_does_not_take_is_405_in_japanese(desk):
    c = login(client(), "sato")
    _japanese_refusal(c.put("/cases", base_url="https://localhost"), 405)


ROUTES = [
    "/",
    "/login",
    "/cases",
    "/cases/1",
    "/cases/4",
    "/stats",
    "/cases/4/in/4/0",
    "/cases/4/out/4/0",
]
PARAMETERS = ["q", "page", "status", "procedure", "owner", "overdue", "show", "done", "x"]
VALUES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789", min_size=1, max_size=6000),
    st.sampled_from(["\x00\x00\x00", '"', "*", "NEAR(", "a OR", "me", "none", "all", "-1"]),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture
def sato(desk):
    """One logged-in client for every example (a login per example would dominate the time,
    and the throttle would close the account)."""
    return login(client(), "sato")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(ROUTES),
    query=st.lists(st.tuples(st.sampled_from(PARAMETERS), VALUES), max_size=4),
)
def test_no_query_string_gives_a_server_error(sato, route, query):
    r = sato.get(route, query_string=query, base_url="https://localhost")
    assert r.status_code < 500, (route, query, r.text[:300])


FORM_VALUES = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789", min_size=1, max_size=30),
    st.sampled_from(["\x00", "issue-code", "reject", "close", "9" * 5000, "sato", "none"]),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    action=st.sampled_from(["claim", "assign", "note", "decide", "reply"]),
    fields=st.dictionaries(
        st.sampled_from(["version", "action", "arg", "reason", "owner", "text"]),
        FORM_VALUES,
        max_size=5,
    ),
    current_version=st.booleans(),
)
def test_no_form_gives_a_server_error(sato, action, fields, current_version):
    """Every case action with arbitrary fields, with the page's CSRF token (and, half the
    time, the version the page shows, so the fields reach the action itself)."""
    page = get(sato, "/cases/2").text
    data = fields | {"csrf": csrf_of(page)}
    if current_version:
        data["version"] = re.search(r'name="version" value="(\d+)"', page).group(1)
    r = post(sato, f"/cases/2/{action}", data)
    assert r.status_code < 500, (action, data, r.text[:300])
