"""The staff desk on the web (SPEC §10): server-rendered Japanese pages over the same SQLite
database as `mailbot run`. Every decision goes through the same code as `mailbot decide`; this
package never sends mail itself (it plans through the outbox, `mailbot run` sends)."""
