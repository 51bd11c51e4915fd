"""A canary secret and every token the provider issued appear in no file, log line or output."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import structlog
from tests.support.cli import Cli
from tests.support.emulator import RunningEmulator
from tests.support.keeper import CLIENT_ID, TENANT, Timeline, microsoft_credential

from mailgate.context import Context
from mailgate.errors import NeedsReauthorization
from mailgate.logs import configure_logging
from mailgate.oauth.tokens import TokenKeeper


def files_under(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file()}


def issued_secrets(emulator: RunningEmulator) -> list[str]:
    state = emulator.state
    return [*state.access_tokens, *state.refresh_tokens]


def test_cli_never_shows_or_stores_a_secret_in_clear(
    cli: Cli, emulator: RunningEmulator, home: Path, tmp_path: Path
) -> None:
    canary = f"CANARY-{uuid.uuid4()}"
    emulator.state.register_client("microsoft", CLIENT_ID, canary, tenant_id=TENANT)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(canary)
    debug = {"MAILGATE_LOG_LEVEL": "debug"}
    outputs = [
        cli(
            "integration",
            "add",
            "m365",
            "--provider",
            "microsoft",
            "--client-id",
            CLIENT_ID,
            "--client-secret-file",
            str(secret_file),
            "--tenant",
            TENANT,
            "--authority",
            emulator.url,
            **debug,
        ),
        cli("integration", "test", "m365", **debug),
        cli("integration", "authorize", "m365", "--client-credentials", **debug),
        cli("integration", "authorize", "m365", "--client-credentials", "--json", **debug),
        cli("credential", "refresh", "1", "--json", **debug),
        cli("credential", "show", "1", "--json", **debug),
        cli("credential", "list", "--json", **debug),
        cli("integration", "show", "m365", "--json", **debug),
        cli("integration", "list", **debug),
        cli("keys", "rotate", **debug),
        cli("credential", "refresh", "1", **debug),
    ]
    assert all(o.code == 0 for o in outputs), [(o.code, o.stderr) for o in outputs]
    secrets = [canary, *issued_secrets(emulator)]
    assert len(secrets) >= 4  # the canary and the app-only access tokens
    text = "".join(o.stdout + o.stderr for o in outputs)
    stored = files_under(home)
    assert any(p.name == "mailgate.db" for p in stored)
    for secret in secrets:
        assert secret not in text
        for path, content in stored.items():
            assert secret.encode() not in content, path


async def test_keeper_logs_carry_no_token(
    ctx: Context, emulator: RunningEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("debug")
    try:
        await exercise_keeper(ctx, emulator)
    finally:
        structlog.reset_defaults()
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    assert "credential refreshed" in logs and "needs reauthorization" in logs
    for secret in issued_secrets(emulator):
        assert secret not in logs
    for content in files_under(ctx.settings.home).values():
        for secret in issued_secrets(emulator):
            assert secret.encode() not in content


async def exercise_keeper(ctx: Context, emulator: RunningEmulator) -> None:
    setup = await microsoft_credential(ctx, emulator)
    timeline = Timeline(ctx.clock, emulator)  # type: ignore[arg-type]
    keeper = TokenKeeper(ctx)
    for _ in range(2):
        timeline.advance(hours=1)
        await keeper.access_token(setup.credential.id)
    emulator.state.revoke_account("microsoft", setup.credential.account)
    timeline.advance(hours=1)
    with pytest.raises(NeedsReauthorization, match="AADSTS50173"):
        await keeper.access_token(setup.credential.id)
