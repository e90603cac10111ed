"""The store: schema, migrations and every query and write; the only package that speaks SQL.

`Store` is the SQLite backend (store/sqlite.py); a second backend would be one more module here.
"""

from mailbot.store.sqlite import MIGRATIONS, Store, StoredMessage, patiently

__all__ = ["MIGRATIONS", "Store", "StoredMessage", "patiently"]
