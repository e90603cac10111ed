"""What a procedure handler is: a pure check of (Mail, what the store knows) → Outcome.

Handlers never write to the store and never send: they get a `Reader`, whose store is a
read-only `StoreView`, and the store applies what the pipeline plans from their Outcome in
one call (case change, events, planned replies). A handler whose cases wait for the
participant may also have `reminder(case, today, ctx) -> (occasion, Reply) | None`, which the
daily reminder job asks for every case awaiting a reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mailbot.context import Reader
    from mailbot.outcome import Incoming, Outcome


class Procedure(Protocol):
    id: str
    actions: tuple[str, ...]

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        """Check a new mail, or a resubmission to `case`."""
        ...

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        """A staff decision; raises DecisionError when it does not fit."""
        ...
