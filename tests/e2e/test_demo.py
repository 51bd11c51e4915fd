"""The README's quick start: `mailgate serve --demo`, then `mailgate integration authorize demo`,
signed in through the emulator mounted in the running server — all real processes and HTTPS."""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from pathlib import Path

import httpx2
from tests.support.browser import press_continue
from tests.support.cli import AuthorizeCommand
from tests.support.emulator import sign_in
from tests.support.server import free_port

from mailgate_emulator.demo import DEMO_PASSWORD


async def wait_until_serving(
    url: str, cert: Path, process: asyncio.subprocess.Process
) -> ssl.SSLContext:
    for _ in range(300):
        assert process.returncode is None, "mailgate serve --demo exited"
        if cert.exists():
            context = ssl.create_default_context(cafile=str(cert))
            try:
                async with httpx2.AsyncClient(verify=context) as client:
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        return context
            except httpx2.HTTPError:
                pass
        await asyncio.sleep(0.1)
    raise AssertionError("mailgate serve --demo did not start")


async def test_quick_start_signs_alice_in_with_the_demo(home: Path) -> None:
    port = free_port()
    url = f"https://localhost:{port}"
    env = {**os.environ, "MAILGATE_HOME": str(home), "MAILGATE_BASE_URL": url}
    env.pop("MAILGATE_DATABASE_URL", None)
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailgate",
        "serve",
        "--demo",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        tls = await wait_until_serving(url, home / "tls" / "localhost.crt", serve)
        command = await AuthorizeCommand.start(env, "demo", "--login-hint", "alice@contoso.example")
        link = await command.link()
        async with httpx2.AsyncClient(verify=tls) as browser:
            start = await press_continue(browser, link)
            assert start.headers["location"].startswith(
                f"{url}/demo-idp/common/oauth2/v2.0/authorize"
            )
            landed = await sign_in(
                browser, start.headers["location"], "alice@contoso.example", DEMO_PASSWORD
            )
            page = await browser.get(landed.headers["location"])
        assert "Connected as alice@contoso.example" in page.text
        assert (await command.result())["account"] == "alice@contoso.example"
        refresh = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailgate",
            "credential",
            "refresh",
            "1",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await refresh.communicate()
        assert refresh.returncode == 0, out + err
    finally:
        serve.terminate()
        await serve.wait()
