"""Intake: mailboxes (maildir, IMAP), receiving (commit, then acknowledge), and the run that
takes each stored mail through parse → route → check → plan → send."""
