"""mailgate: an email channel for issue tracking, with OAuth 2.0 for IMAP, POP3 and SMTP."""

__version__ = "0.1.0"
