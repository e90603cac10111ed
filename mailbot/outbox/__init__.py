"""The outbox: planning an Outcome into rows in one transaction, and sending what is due."""
