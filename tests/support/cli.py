"""Run the real `mailgate` command in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    def __init__(self, home: Path, **env: str) -> None:
        self.home = home
        self.env = {**os.environ, "MAILGATE_HOME": str(home), **env}
        for key in ("MAILGATE_DATABASE_URL", "MAILGATE_SECRET_KEYS", "MAILGATE_BASE_URL"):
            if key not in env:
                self.env.pop(key, None)

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        done = subprocess.run(
            [sys.executable, "-m", "mailgate", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return Result(done.returncode, done.stdout, done.stderr)
