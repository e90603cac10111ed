"""What a procedure handler may ask the store: the reads it uses, and nothing that writes.

Handlers check a mail against what the store knows and return an Outcome; the pipeline has
the store apply it. Handing them this view instead of the `Store` makes that a property of
the code rather than a convention: there is no write method to call, and no connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.store import registers
from mailbot.store.sqlite import Store


class StoreView:
    """A read-only view of one `Store` (tests/test_effect.py checks it names no writer)."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    def case(self, case_id: int) -> dict[str, Any] | None:
        return self._store.case(case_id)

    def newest_case_id(
        self, procedure: str, source_id: str, statuses: tuple[str, ...]
    ) -> int | None:
        return self._store.newest_case_id(procedure, source_id, statuses)

    def case_data_of(
        self, procedure: str, statuses: tuple[str, ...], except_case: int
    ) -> list[str]:
        return self._store.case_data_of(procedure, statuses, except_case)

    def open_applications_named(self, procedure: str, key: str, except_case: int) -> list[int]:
        return self._store.open_applications_named(procedure, key, except_case)

    def latest_notice(self, kind: str, source_id: str) -> dict[str, Any] | None:
        return self._store.latest_notice(kind, source_id)

    def last_mail_of_kind(self, case_id: int, kind: str) -> tuple[str, str] | None:
        return self._store.last_mail_of_kind(case_id, kind)

    def auto_replies_since(self, recipient: str, since: datetime, kind: str | None = None) -> int:
        return self._store.auto_replies_since(recipient, since, kind)

    def operator_code_exists(self, code: str) -> bool:
        return self._store.operator_code_exists(code)

    def operator_codes(self) -> set[str]:
        return self._store.operator_codes()

    def grid_code_issued(self, grid_code: str) -> bool:
        return self._store.grid_code_issued(grid_code)

    def operator(self, code: str) -> dict[str, Any] | None:
        return registers.operator(self._store, code)

    def operators_for_sender(
        self, sender: str, free_mail: frozenset[str] = frozenset()
    ) -> list[dict[str, Any]]:
        return registers.operators_for_sender(self._store, sender, free_mail)

    def operators_named(self, name: str) -> list[dict[str, Any]]:
        return registers.operators_named(self._store, name)

    def source(self, source_id: str) -> dict[str, Any] | None:
        return registers.source(self._store, source_id)
