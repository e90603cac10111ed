"""Everything one run needs, built once at start-up and passed in (no module globals).

`Context` gives handlers read access to what the store knows; only the pipeline and the
decision code write through it, inside a transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime

from mailbot.businessdays import CALENDAR_RULES, BusinessCalendar
from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.errors import ConfigError
from mailbot.mail.render import Renderer
from mailbot.routing import Routing, load_routing
from mailbot.store import Store

log = logging.getLogger(__name__)


@dataclass
class Context:
    config: Config
    store: Store
    clock: Clock
    routing: Routing = field(init=False)
    renderer: Renderer = field(init=False)

    def __post_init__(self) -> None:
        if not self.config.templates_dir.is_dir():
            raise ConfigError(
                "paths.templates", f"{self.config.templates_dir}: not a folder of templates"
            )
        self.routing = load_routing(self.config.rules_dir)
        self.renderer = Renderer(self.config.templates_dir)

    @classmethod
    def open(cls, config: Config, clock: Clock) -> Context:
        return cls(config=config, store=Store(config.database), clock=clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self.clock.now()

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
