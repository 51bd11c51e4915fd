"""Benchmark: what one hostile message costs to parse — the worst time and peak memory per
message over the generated hostile corpus, beside the floor (a plain 2 KB message) in one run.

The corpus is the one the fuzz test draws from (`tests/support/hostile.py`, seeded): each kind
(truncated MIME, bad boundaries, deep nesting, huge headers and parameters, bad charsets, NUL and
bare CR, 8-bit headers, encoded-word abuse, many parts, archive bombs, hostile file names …) and
the pathological messages that once took minutes and gigabytes each. Every message is parsed
in a fresh process (so the peak memory is that message's own): the parse time, and the peak
resident memory of the process (the interpreter and the message included), beside the same
figures for a plain message. Printed, not asserted.

    .venv/bin/python bench/hostile.py [--per-kind 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.hostile import KINDS, PATHOLOGICAL  # noqa: E402

CHILD = """
import sys, time
from mailgate.inbound.parse import parse_message
raw = sys.stdin.buffer.read()
started = time.perf_counter()
parse_message(raw)
elapsed = time.perf_counter() - started
# VmHWM: this process's own peak (getrusage's ru_maxrss would include the parent's, kept
# across fork and exec).
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(elapsed, status.split()[0])
"""
PLAIN = (
    b"From: Customer <customer@example.net>\r\nTo: help@example.com\r\n"
    b"Subject: Printer offline\r\nMessage-ID: <plain@example.net>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + b"The printer is offline again. " * 66
)


def measure(raw: bytes) -> tuple[float, int]:
    """(seconds, peak resident kilobytes of the parsing process) for one parse."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD], input=raw, capture_output=True, check=True, timeout=600
    )
    seconds, kilobytes = done.stdout.split()
    return float(seconds), int(kilobytes)


def row(name: str, raws: list[bytes], floor: tuple[float, int]) -> str:
    results = [measure(raw) for raw in raws]
    worst_time = max(seconds for seconds, _ in results)
    worst_memory = max(kilobytes for _, kilobytes in results)
    largest = max(len(raw) for raw in raws)
    return (
        f"| {name} | {len(raws)} | {largest / 1024:,.0f} KB | {worst_time * 1000:,.1f} ms "
        f"| {worst_time / floor[0]:,.0f}× | {worst_memory / 1024:,.0f} MB "
        f"| {worst_memory / floor[1]:,.1f}× |"
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--per-kind", type=int, default=5)
    options.add_argument("--seed", type=int, default=7)
    given = options.parse_args()
    floor = min(measure(PLAIN) for _ in range(5))
    print(
        f"floor: a plain 2 KB message parses in {floor[0] * 1000:.2f} ms (best of 5), "
        f"in a process of {floor[1] / 1024:.0f} MB at its peak\n"
    )
    print("| kind | messages | largest | worst parse | vs floor | worst peak memory | vs floor |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rng = random.Random(given.seed)
    for kind, build in sorted(KINDS.items()):
        raws = [build(random.Random(rng.randrange(2**32))) for _ in range(given.per_kind)]
        print(row(kind, raws, floor), flush=True)
    for name, make in PATHOLOGICAL.items():
        print(row(name, [make()], floor), flush=True)


if __name__ == "__main__":
    main()
