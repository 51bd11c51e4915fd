"""`python -m mailgate_emulator`: serve the emulator with uvicorn.

Prints exactly one line to stdout once the socket is bound — ``listening on http://HOST:PORT``
(``https`` with ``--ssl-certfile``) — so a parent process can read the port when `--port 0`
lets the OS choose it. Uvicorn's own logs go to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mailgate_emulator.config import load_config
from mailgate_emulator.serve import EmulatorServer, server_config
from mailgate_emulator.state import EmulatorState


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mailgate_emulator",
        description="Emulated Microsoft identity platform and Google OAuth endpoints for tests.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS choose (default)")
    parser.add_argument("--ssl-certfile", type=Path)
    parser.add_argument("--ssl-keyfile", type=Path)
    parser.add_argument("--config", type=Path, help="JSON file of clients, grants, ... to preload")
    parser.add_argument("--log-level", default="warning")
    arguments = parser.parse_args(argv)
    if (arguments.ssl_certfile is None) != (arguments.ssl_keyfile is None):
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted."""
    arguments = _arguments(argv)
    state = EmulatorState()
    if arguments.config is not None:
        try:
            load_config(arguments.config, state)
        except (OSError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    scheme = "https" if arguments.ssl_certfile else "http"

    def announce(server: EmulatorServer) -> None:
        host, port = server.bound_address()
        print(f"listening on {scheme}://{host}:{port}", flush=True)

    config = server_config(
        state,
        host=arguments.host,
        port=arguments.port,
        ssl_certfile=arguments.ssl_certfile,
        ssl_keyfile=arguments.ssl_keyfile,
        log_level=arguments.log_level,
    )
    EmulatorServer(config, announce).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
