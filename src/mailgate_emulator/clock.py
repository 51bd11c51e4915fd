"""The emulator's clock: real time plus an offset that tests move forward.

Refresh tokens live for 90 days and Google's testing-status grants for 7; a test that needs to see
them expire advances this clock instead of sleeping, so a 90-day scenario runs in milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class EmulatorClock:
    """`now()` is the time source plus an offset; `advance()` moves the offset forward."""

    def __init__(self, source: Callable[[], float] = time.time) -> None:
        self._source = source
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """The emulator's current time, in seconds since the epoch."""
        with self._lock:
            return self._source() + self._offset

    @property
    def offset(self) -> float:
        """How far the emulator runs ahead of its time source, in seconds."""
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (never backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._source() + self._offset

    def reset(self) -> None:
        """Put the clock back on its time source."""
        with self._lock:
            self._offset = 0.0
