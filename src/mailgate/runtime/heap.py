"""The cyclic garbage collector in a process that holds a thousand connections.

Python's collector walks every object it tracks at each pass of its oldest generation. A worker
holding a thousand IDLE mailboxes tracks about 270,000 objects, nearly all of them long-lived
(the connections, their TLS state, the loops' tasks): a full pass took 176 ms, about one a
minute with nothing arriving: 0.3 % of a core, a sixth of the worker's CPU in IDLE
(bench/idle_scale.py).

`tidy` collects once, then freezes what survived (`gc.freeze`): the collector's own passes skip
it from then on. Frozen objects are never freed by the collector, so `tidy` first unfreezes the
last ones: run every `TIDY_SECONDS`, a cycle of garbage among them (a mailbox loop stopped
since) waits at most that long to be freed. `release` unfreezes them for good.
"""

from __future__ import annotations

import gc

TIDY_FIRST_SECONDS = 30.0  # after a worker's start, once its mailboxes are mostly open
TIDY_SECONDS = 600.0


def tidy() -> int:
    """Collect everything once, then freeze what is left; how many objects are frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def release() -> None:
    """Give every frozen object back to the collector."""
    gc.unfreeze()
