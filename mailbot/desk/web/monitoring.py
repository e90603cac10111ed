"""/healthz and /metrics, for probes and Prometheus; the access log of the web desk.

Both read the database read-only (`store.monitor.observe`), never through a session, and are
served by the web desk and, with `[monitoring] listen`, by `mailbot run` itself (a small
listener of its own, for a daemon that runs without the web desk). Every number is counted
from stored rows, so the two processes and a restart agree.

/healthz answers 200 when healthy and 503 when not, with a JSON body saying why: the
database cannot be read, a mailbox has not been read for `mailbox_alert_minutes` (failing, or
no good read recorded that recently), or a reply has been due for `reply_due_minutes`. The
body names kinds and times only, never a server's answer (that may name accounts): those are
in `mailbot doctor`.

/metrics answers a bearer token (`metrics_token_env` / `metrics_token_file`) or a peer in
`trusted_networks` (loopback by default). A request that came through a proxy (it carries
X-Forwarded-For or Forwarded) is never let in by its peer address: a reverse proxy on the same
host would otherwise open /metrics to everyone it serves.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from mailbot.clock import Clock
from mailbot.config import Config, MonitoringConfig
from mailbot.states import OPEN
from mailbot.store.monitor import Observation, age, observe

log = logging.getLogger(__name__)
access_log = logging.getLogger("mailbot.access")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic Prometheus text format, which `generate_latest` writes and every Prometheus
reads."""
PUBLIC_ENDPOINTS = frozenset({"healthz", "metrics"})
"""Endpoints that answer without a session (the web desk's login check lets them through)."""


def _observe(config: Config, clock: Clock) -> tuple[Observation, Any]:
    now = clock.now()
    return observe(config.database, now, now.date().isoformat()), now


def health(config: Config, clock: Clock) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of /healthz."""
    seen, now = _observe(config, clock)
    limits = config.monitoring
    problems: list[str] = []
    body: dict[str, Any] = {"checked_at": now.isoformat(timespec="seconds")}
    body["database"] = {"ok": seen.error is None}
    if seen.error is not None:
        problems.append("database unreadable")
    boxes = []
    for box in config.mailboxes:
        status = seen.mailboxes.get(box.address)
        last_age = status.last_ok_age(now) if status else None
        ok = last_age is not None and last_age < limits.mailbox_alert_minutes * 60
        if not ok:
            problems.append(f"mailbox {box.address} not read")
        boxes.append(
            {
                "address": box.address,
                "ok": ok,
                "last_read_at": status.last_ok_at if status else None,
                "last_read_age_seconds": round(last_age) if last_age is not None else None,
                "failing_since": status.failing_since if status else None,
                "failure_kind": status.failure_kind if status else None,
            }
        )
    body["mailboxes"] = boxes
    due_age = age(seen.oldest_due, now)
    outbox_ok = due_age < limits.reply_due_minutes * 60
    if not outbox_ok:
        problems.append("replies due and not sent")
    body["outbox"] = {
        "ok": outbox_ok,
        "due": seen.outbox_due,
        "oldest_due": seen.oldest_due,
        "oldest_due_age_seconds": round(due_age),
    }
    body["status"] = "fail" if problems else "ok"
    body["problems"] = problems
    return (503 if problems else 200), body


class DeskCollector:
    """The custom collector of /metrics: one `observe` per scrape."""

    def __init__(self, config: Config, clock: Clock) -> None:
        self.config, self.clock = config, clock

    def collect(self) -> Iterator[Metric]:
        seen, now = _observe(self.config, self.clock)
        yield GaugeMetricFamily(
            "mailbot_up", "1 when the database could be read", value=int(seen.error is None)
        )
        if seen.error is not None:
            return
        healthy = health(self.config, self.clock)[0] == 200
        yield GaugeMetricFamily(
            "mailbot_healthy", "1 when /healthz answers 200", value=int(healthy)
        )
        received = CounterMetricFamily(
            "mailbot_mails_received", "mails stored, by mailbox", labels=["mailbox"]
        )
        for box in self.config.mailboxes:
            received.add_metric([box.address], seen.received.get(box.address, 0))
        yield received
        processed = CounterMetricFamily(
            "mailbot_mails_processed", "stored mails processed, by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(seen.processed.items()):
            processed.add_metric([outcome], count)
        yield processed
        yield CounterMetricFamily(
            "mailbot_mails_quarantined", "mails set aside with a reason", value=seen.quarantined
        )
        replies = CounterMetricFamily(
            "mailbot_replies",
            "outgoing mails: sent (taken by the server), deferred (each temporary failure),"
            " failed (refused for good), bounced (sent, then returned)",
            labels=["result"],
        )
        for result in ("sent", "deferred", "failed", "bounced"):
            replies.add_metric([result], seen.replies.get(result, 0))
        yield replies
        cases = GaugeMetricFamily("mailbot_cases_open", "open cases, by status", labels=["status"])
        for status in sorted(set(map(str, OPEN)) | set(seen.open_cases)):
            cases.add_metric([status], seen.open_cases.get(status, 0))
        yield cases
        yield GaugeMetricFamily(
            "mailbot_cases_overdue", "open cases past their due date", value=seen.overdue
        )
        yield GaugeMetricFamily(
            "mailbot_oldest_unprocessed_mail_age_seconds",
            "how long the oldest stored, unprocessed mail has waited (0: none)",
            value=age(seen.oldest_unprocessed, now),
        )
        yield GaugeMetricFamily(
            "mailbot_outbox_due", "outgoing mails due and not sent", value=seen.outbox_due
        )
        yield GaugeMetricFamily(
            "mailbot_oldest_reply_due_age_seconds",
            "how long the oldest due outgoing mail has waited (0: none)",
            value=age(seen.oldest_due, now),
        )
        last_read = GaugeMetricFamily(
            "mailbot_mailbox_last_read_age_seconds",
            "seconds since the mailbox was last read well (absent: never)",
            labels=["mailbox"],
        )
        unreadable = GaugeMetricFamily(
            "mailbot_mailbox_unreadable_seconds",
            "seconds the mailbox has been unreadable (0: it is read)",
            labels=["mailbox"],
        )
        for box in self.config.mailboxes:
            status = seen.mailboxes.get(box.address)
            if status is not None and status.last_ok_at:
                last_read.add_metric([box.address], status.last_ok_age(now) or 0.0)
            unreadable.add_metric([box.address], status.failing_for(now) if status else 0.0)
        yield last_read
        yield unreadable


def metrics_text(config: Config, clock: Clock) -> bytes:
    """The Prometheus text exposition of `DeskCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeskCollector(config, clock))
    return generate_latest(registry)


def metrics_allowed(
    monitoring: MonitoringConfig, peer: str | None, headers: Any
) -> tuple[bool, int]:
    """(allowed, status to refuse with: 401 when a token would do, else 403)."""
    token = monitoring.metrics_token
    given = headers.get("Authorization", "")
    if (
        token is not None
        and given.startswith("Bearer ")
        and hmac.compare_digest(given[7:].strip().encode(), token.encode())
    ):
        return True, 200
    proxied = headers.get("X-Forwarded-For") or headers.get("Forwarded")
    if peer and not proxied and _in_networks(peer, monitoring.trusted_networks):
        return True, 200
    if token is None and monitoring.token_problem:
        log.warning("/metrics: %s", monitoring.token_problem)
    return False, 401 if token is not None else 403


def _in_networks(peer: str, networks: tuple[str, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def add_routes(app: Flask, config: Config, clock: Clock) -> None:
    """/healthz and /metrics on `app` (the web desk, or the daemon's own listener)."""

    @app.route("/healthz", methods=["GET", "HEAD"], endpoint="healthz")
    def _healthz() -> Response:
        status, body = health(config, clock)
        return Response(
            json.dumps(body, ensure_ascii=False),
            status=status,
            mimetype="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.route("/metrics", methods=["GET"], endpoint="metrics")
    def _metrics() -> Response:
        allowed, refused = metrics_allowed(config.monitoring, request.remote_addr, request.headers)
        if not allowed:
            headers = {"WWW-Authenticate": "Bearer"} if refused == 401 else {}
            return Response("forbidden\n", status=refused, mimetype="text/plain", headers=headers)
        return Response(
            metrics_text(config, clock),
            status=200,
            content_type=CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )


def add_access_log(app: Flask) -> None:
    """One line per request on the `mailbot.access` logger: method, path (never the query
    string, which may carry a token), status, milliseconds and the staff login if any.
    Cookies, headers and form fields are never logged."""

    @app.before_request
    def _started() -> None:
        g.access_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        started = g.get("access_started")
        ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        session = g.get("session")
        login = getattr(session, "login", None) or "-"
        fields = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "ms": round(ms, 1),
            "user": login,
        }
        access_log.info(
            "%s %s %s %.1fms user=%s",
            request.method,
            request.path,
            response.status_code,
            ms,
            login,
            extra={"fields": fields},
        )
        return response


def monitoring_app(config: Config, clock: Clock) -> Flask:
    """The daemon's listener: /healthz and /metrics only."""
    app = Flask(__name__, static_folder=None)
    add_access_log(app)
    add_routes(app, config, clock)
    return app


@contextmanager
def listening(config: Config, clock: Clock) -> Iterator[None]:
    """`[monitoring] listen`: serve /healthz and /metrics from a thread of this process for
    as long as the block runs (waitress, two threads). Nothing without the key."""
    if config.monitoring.listen is None:
        yield
        return
    from waitress.server import create_server

    host, port = config.monitoring.listen
    server = create_server(
        monitoring_app(config, clock), host=host, port=port, threads=2, ident="mailbot"
    )
    thread = threading.Thread(target=server.run, name="monitoring", daemon=True)
    thread.start()
    log.info("serving /healthz and /metrics on http://%s:%s/", host, port)
    try:
        yield
    finally:
        server.close()
