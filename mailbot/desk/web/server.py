"""`mailbot web`: the desk served by waitress (a pure-Python WSGI server, threads, no fork).

waitress reads a whole request body (into a temporary file past 512 KB) before the app sees
it, and by default takes bodies up to 1 GiB and 100 connections from anyone. So the app's own
limit is given to waitress too: a Content-Length over it is answered 413 from the headers,
before a byte of the body is read, and a chunked body is cut off at the limit. Each client
(an IPv6 client as its /64, as the login throttle counts) holds at most `[web]
connections_per_client` of the `CONNECTIONS` connections: one more is answered 429 and
closed, so one address cannot take every connection from staff. A trusted proxy
(`[web] trusted_proxies`) carries everyone's connections and is not capped.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Flask
from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.context import Context
from mailbot.desk.staff import backfill_search
from mailbot.desk.web.app import MAX_BODY_BYTES, create_app
from mailbot.desk.web.security import TrustedProxies

log = logging.getLogger(__name__)

CONNECTIONS = 100
THREADS = 4
_REFUSAL_TEXT = "同時接続数の上限を超えました。しばらくしてからお試しください。".encode()
REFUSAL = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\nRetry-After: 10\r\nContent-Length: "
    + str(len(_REFUSAL_TEXT)).encode()
    + b"\r\n\r\n"
    + _REFUSAL_TEXT
)


def serve(config: Config, now: str | None, *, host: str, port: int) -> int:
    clock = Clock.from_option(now)
    with Context.open(config, clock) as ctx:  # migrates the database before the first request
        backfill_search(ctx)
    logging.getLogger("mailbot.access").setLevel(logging.INFO)
    server = build_server(create_app(config, clock), config, host=host, port=port)
    log.info("serving the staff desk on http://%s:%s/", host, port)
    server.run()
    return 0


def build_server(app: Flask, config: Config, *, host: str, port: int) -> Any:
    """The waitress server for `app` with the desk's limits, bound and not yet running
    (`.run()` serves; `.close()` stops; port 0 takes a free port, `.effective_port`)."""
    sockets: dict[int, Any] = {}
    server = create_server(
        app,
        map=sockets,
        host=host,
        port=port,
        threads=THREADS,
        ident="mailbot",
        max_request_body_size=MAX_BODY_BYTES + 1,  # waitress refuses a body of this or more
        connection_limit=CONNECTIONS,
    )
    channel = guarded_channel(
        TrustedProxies.of(config.web.trusted_proxies), config.web.connections_per_client
    )
    for listener in list(sockets.values()):
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
    return server


def guarded_channel(proxies: TrustedProxies, per_client: int) -> type[HTTPChannel]:
    """waitress's connection, refused at once (429, closed) when its client already holds
    `per_client` others. Counted from the server's open channels, so a closed
    connection needs no bookkeeping to be released."""

    class GuardedChannel(HTTPChannel):
        def __init__(self, server: Any, sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
            super().__init__(server, sock, addr, adj, map)
            peer = addr[0] if isinstance(addr, tuple) and addr else None
            if peer is None or proxies.trusts(peer):
                return
            client = proxies.client(peer, [])
            held = sum(
                1
                for other in list(server.active_channels.values())
                if isinstance(other.addr, tuple)
                and other.addr
                and proxies.client(other.addr[0], []) == client
            )
            if held > per_client:
                log.warning("web desk: %s holds %d connections; refused one more", client, held)
                with contextlib.suppress(OSError):  # best effort: the client may be gone
                    sock.send(REFUSAL)
                self.handle_close()

    return GuardedChannel
