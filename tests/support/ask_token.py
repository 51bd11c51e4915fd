"""A separate mailgate process asking for one credential's access token N times at once.

    python -m tests.support.ask_token CREDENTIAL_ID N START_AT [--die-before-commit]

Waits until the epoch time START_AT (so several processes ask together), then prints one JSON
line: the SHA-256 of every token it got (never a token itself). With --die-before-commit the
process kills itself (SIGKILL) after the token response arrived, before it is committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import time

from mailgate.context import Context
from mailgate.logs import configure_logging
from mailgate.oauth.tokens import TokenKeeper


async def die(_row: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(credential_id: int, count: int, start_at: float, crash: bool) -> None:
    configure_logging("warning")
    ctx = Context.open()
    keeper = TokenKeeper(ctx, lease_poll_interval=0.05, before_commit=die if crash else None)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    tokens = await asyncio.gather(*(keeper.access_token(credential_id) for _ in range(count)))
    await ctx.close()
    digests = sorted({hashlib.sha256(t.value.encode()).hexdigest() for t in tokens})
    print(json.dumps({"digests": digests, "count": len(tokens)}))


if __name__ == "__main__":
    crash = "--die-before-commit" in sys.argv
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), crash))
