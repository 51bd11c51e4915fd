"""The `mailgate` command. Thin: parse arguments, call a service function, print the result.

`app.py` holds the top level and the entry point `main`; each command or group of commands is
a module of its own (`integration.py`, `mailbox.py`, …), imported only when it runs; what they
share (running in a context, printing JSON or text, errors and exit statuses) is `common.py`.
"""

from mailgate.cli.app import app, main

__all__ = ["app", "main"]
