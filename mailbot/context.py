"""Everything one run needs, built once at start-up and passed in (no module globals).

Procedure handlers get a `Reader`: the same settings, and the store only as a
read-only `StoreView`. Only the pipeline, the decision code and the jobs write, through
`Context.store`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO

from mailbot.businessdays import CALENDAR_RULES, BusinessCalendar
from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.errors import ConfigError
from mailbot.mail.render import Renderer
from mailbot.routing import Routing, load_routing
from mailbot.store import Store
from mailbot.store.restore import hold_shared
from mailbot.store.view import StoreView

log = logging.getLogger(__name__)


@dataclass
class Context:
    config: Config
    store: Store
    clock: Clock
    routing: Routing = field(init=False)
    renderer: Renderer = field(init=False)
    in_use: IO[str] | None = None
    """The shared lock on the database (`store.restore.hold_shared`) that `open` takes, so
    that `mailbot restore` never swaps the files under a process."""

    def __post_init__(self) -> None:
        if not self.config.templates_dir.is_dir():
            raise ConfigError(
                "paths.templates", f"{self.config.templates_dir}: not a folder of templates"
            )
        self.routing = load_routing(self.config.rules_dir)
        self.renderer = Renderer(self.config.templates_dir)

    @classmethod
    def open(cls, config: Config, clock: Clock) -> Context:
        lock = hold_shared(config.database)
        try:
            return cls(config=config, store=Store(config.database), clock=clock, in_use=lock)
        except BaseException:
            if lock is not None:
                lock.close()
            raise

    def close(self) -> None:
        self.store.close()
        if self.in_use is not None:
            self.in_use.close()
            self.in_use = None

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self.clock.now()

    def for_handlers(self) -> Reader:
        return Reader(self)

    @property
    def calendar(self) -> BusinessCalendar:
        return CALENDAR_RULES.load(self.config.rules_dir)

    def business_days_after(self, start: date, days: int) -> date:
        return self.calendar.add_business_days(start, days)

    def address_for(self, mailbox_local: str) -> str:
        for box in self.config.mailboxes:
            if box.local_part == mailbox_local:
                return box.address
        domain = self.config.message_id_domain
        return f"{mailbox_local}@{domain}"


class Reader:
    """What a procedure handler sees: the run's settings, clock and rules, and the store only
    through a read-only view (handlers decide; they never write)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.config = ctx.config
        self.routing = ctx.routing
        self.store = StoreView(ctx.store)

    def now(self) -> datetime:
        return self._ctx.now()

    @property
    def calendar(self) -> BusinessCalendar:
        return self._ctx.calendar

    def business_days_after(self, start: date, days: int) -> date:
        return self._ctx.business_days_after(start, days)

    def address_for(self, mailbox_local: str) -> str:
        return self._ctx.address_for(mailbox_local)
