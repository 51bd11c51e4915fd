"""Run the real `mailgate` command in a subprocess, as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import re
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


class AuthorizeCommand:
    """`mailgate integration authorize NAME … --json` running in the background, as a user
    would start it: read the sign-in link it prints, then its result once the sign-in ends."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, env: dict[str, str], name: str, *args: str) -> AuthorizeCommand:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailgate",
            "integration",
            "authorize",
            name,
            *args,
            "--json",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def link(self) -> str:
        """The sign-in link (printed on stderr, since stdout carries the JSON result)."""
        assert self.process.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.process.stderr.readline(), 30)).decode()
            assert line, "the command ended without printing the sign-in link"
            found = re.search(r"https://\S+/oauth2/start\?request=\S+", line)
            if found:
                return found.group(0)

    async def result(self) -> Any:
        out, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode == 0, err
        return json.loads(out)
