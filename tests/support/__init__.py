"""Helpers the tests and bench/ share: mails built as Japanese clients build them, forms, the
real Dovecot/aiosmtpd servers, desks ready to run, the samples and the hostile corpus."""
