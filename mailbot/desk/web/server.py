"""`mailbot web`: the desk served by waitress (a pure-Python WSGI server, threads, no fork)."""

from __future__ import annotations

import logging

from waitress import serve as waitress_serve

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.context import Context
from mailbot.desk.staff import backfill_search
from mailbot.desk.web.app import create_app

log = logging.getLogger(__name__)


def serve(config: Config, now: str | None, *, host: str, port: int) -> int:
    clock = Clock.from_option(now)
    with Context.open(config, clock) as ctx:  # migrates the database before the first request
        backfill_search(ctx)
    app = create_app(config, clock)
    logging.getLogger("mailbot.access").setLevel(logging.INFO)
    log.info("serving the staff desk on http://%s:%s/", host, port)
    waitress_serve(app, host=host, port=port, threads=4, ident="mailbot")
    return 0
