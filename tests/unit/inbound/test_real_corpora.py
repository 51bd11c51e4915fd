"""Real mail that other projects collected (Zammad, talon, crisp email-reply-parser), scored by
the corpora's own checker against `mailgate parse --json`: every field at 95% or more, quote
removal at 90% or more, no crash and no timeout.

The corpora live beside the repository (`../shared/corpora`) and are never copied into it; CI
checks them out there. A missing folder fails this test: a skipped check would pass silently.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CORPORA = (Path(__file__).parents[3] / ".." / "shared" / "corpora").resolve()
SETS = ("zammad", "talon", "crisp")
MAILGATE = Path(sys.executable).parent / "mailgate"


def test_real_mail_is_read_like_a_mature_helpdesk(tmp_path: Path) -> None:
    checker = CORPORA / "check.py"
    missing = [
        str(path) for path in (checker, *(CORPORA / name for name in SETS)) if not path.exists()
    ]
    if missing:
        pytest.fail(
            f"the real-mail corpora are missing: {', '.join(missing)} — check out the shared "
            f"corpora next to the repository ({CORPORA})",
            pytrace=False,
        )
    result = subprocess.run(
        [
            sys.executable,
            str(checker),
            str(MAILGATE),
            *(str(CORPORA / name) for name in SETS),
            "--threshold",
            "0.95",
            "--min",
            "quote-removed=0.90",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "MAILGATE_HOME": str(tmp_path)},
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
