"""The exception tree. Callers catch `MailbotError`, or a precise leaf.

MailbotError
├── ConfigError(key, why)        the configuration or a rules/ file is wrong
├── QuarantineError(reason)      a mail cannot be handled; it is stored aside with the reason
├── StoreError                   the database cannot be written (disk full, read-only)
│   └── StoreBusy                another connection held the write lock past the busy timeout
├── MailboxError                 a mailbox cannot be reached or refuses us (login, folder)
├── DecisionError                a staff decision does not fit the case
└── SendError
    ├── TransientSendError       try again later (4xx, connection refused, timeout)
    └── PermanentSendError       the server refused for good (5xx)
"""

from __future__ import annotations


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


class QuarantineError(MailbotError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(MailbotError):
    pass


class StoreBusy(StoreError):
    """SQLite's write lock stayed taken past the busy timeout (another connection's long
    transaction): the same write succeeds later, so a caller that must not lose it waits."""


class MailboxError(MailbotError):
    pass


class DecisionError(MailbotError):
    pass


class SendError(MailbotError):
    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientSendError(SendError):
    pass


class PermanentSendError(SendError):
    pass
