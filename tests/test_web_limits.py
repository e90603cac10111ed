"""What a stranger's connections can make the web desk hold (issue 25, point 4), on a real
waitress server on loopback: a body over the desk's limit is refused from its headers, before
any of it is read (waitress used to store up to 1 GiB first), and one client holds at most
`[web] connections_per_client` connections."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailbot.clock import Clock, parse_instant
from mailbot.config import DEFAULT_CONFIG, parse_config
from mailbot.desk.web.app import MAX_BODY_BYTES, create_app
from mailbot.desk.web.server import build_server

RESET = b"(reset)"
WAIT = 20.0  # a socket that hears nothing for this long fails the test instead of hanging


@contextmanager
def serving(tmp_path: Path, extra: str = "") -> Iterator[int]:
    """The desk served by waitress on a free loopback port, in a thread, until the block ends
    (then every socket is closed from inside the server's loop, which ends it)."""
    config = parse_config(DEFAULT_CONFIG + extra, "test", tmp_path)
    app = create_app(config, Clock(parse_instant("2026-11-25T09:00")))
    server = build_server(app, config, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        sockets = server._map
        server.trigger.pull_trigger(lambda: [d.close() for d in list(sockets.values())])
        thread.join(WAIT)
        server.task_dispatcher.shutdown()


PER_CLIENT = 5


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[int]:
    with serving(tmp_path, f"[web]\nconnections_per_client = {PER_CLIENT}\n") as port:
        yield port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    return sock


def answer(sock: socket.socket) -> bytes:
    """What the server says until it closes or WAIT passes."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"Connection: close" not in data:
                head, _, body = data.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(body) >= length[0]:
                    break
    except TimeoutError:
        pass
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return data or RESET
    return data


def test_a_200_mb_login_post_is_refused_from_its_headers(desk: int):
    sock = connect(desk)
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: desk\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 209715200\r\n\r\n"
    )
    reply = answer(sock)  # not one byte of the body was sent
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    sock.close()


def test_a_chunked_body_is_cut_off_at_the_limit(desk: int):
    sock = connect(desk)
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: desk\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    piece = b"a" * 16384
    sent = 0
    while not select.select([sock], [], [], 0.01)[0]:  # until the server answers
        sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
        assert sent < 4 * MAX_BODY_BYTES, "the body went on past the limit unanswered"
    reply = answer(sock)  # the 413, or a reset that overtook it: the server read no further
    assert reply.startswith(b"HTTP/1.1 413") or reply == RESET, reply[:200]
    sock.close()


def test_a_body_within_the_limit_still_reaches_the_desk(desk: int):
    sock = connect(desk)
    body = b"login=x&password=" + b"p" * 200_000
    sock.sendall(
        b"POST /login HTTP/1.1\r\nHost: desk\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]  # no login CSRF cookie: the app's answer
    sock.close()


def get_login(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /login HTTP/1.1\r\nHost: desk\r\n\r\n")
    return answer(sock)


def test_one_client_holds_at_most_its_share_of_connections(desk: int):
    held = [connect(desk) for _ in range(PER_CLIENT)]
    for sock in held:  # each is served (and so accepted before the next one below)
        assert get_login(sock).startswith(b"HTTP/1.1 200")
    extra = connect(desk)
    refused = answer(extra)
    assert refused.startswith(b"HTTP/1.1 429"), refused[:200]
    assert "同時接続数の上限" in refused.decode("utf-8", "replace")
    extra.close()
    held.pop().close()
    for _ in range(100):  # the server notices the closed one at its next look
        again = connect(desk)
        reply = get_login(again)
        again.close()
        if reply.startswith(b"HTTP/1.1 200"):
            break
        assert reply.startswith(b"HTTP/1.1 429"), reply[:200]
        time.sleep(0.05)
    else:
        pytest.fail("a closed connection was never given back to its client")
    for sock in held:
        sock.close()


def test_a_trusted_proxy_carries_more_connections(tmp_path: Path):
    extra = f'[web]\nconnections_per_client = {PER_CLIENT}\ntrusted_proxies = ["127.0.0.1"]\n'
    with serving(tmp_path, extra) as port:
        held = [connect(port) for _ in range(PER_CLIENT + 4)]
        for sock in held:
            assert get_login(sock).startswith(b"HTTP/1.1 200")
        for sock in held:
            sock.close()
