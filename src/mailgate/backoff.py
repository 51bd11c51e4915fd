"""Exponential backoff with jitter, for token refreshes and mail server reconnects. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """base·2^(n-1) seconds for the n-th failure in a row, capped, times a factor in [0.5, 1]
    (the jitter keeps many clients from retrying in step)."""
    growth = float(1 << min(max(failures, 1) - 1, 30))
    jitter: float = rng.uniform(0.5, 1.0)
    return min(cap, base * growth) * jitter


@dataclass
class Backoff:
    """A failure count and its next delay; reset after a success."""

    base: float = 1.0
    cap: float = 300.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        self.failures += 1
        return delay(self.failures, self.base, self.cap, self.rng)

    def reset(self) -> None:
        self.failures = 0
