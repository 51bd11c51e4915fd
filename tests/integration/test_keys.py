"""`keys rotate`: every stored secret re-encrypted under a new key, nothing lost."""

from __future__ import annotations

import json

import httpx2
from cryptography.fernet import Fernet
from sqlalchemy import select
from tests.support.emulator import RunningEmulator
from tests.support.keeper import CLIENT_SECRET, microsoft_credential, reload, reload_integration

from mailgate.config import Settings
from mailgate.context import Context
from mailgate.keys import rotate_keys
from mailgate.store.models import IdempotencyKey
from mailgate.store.secretbox import SecretBox, read_key_file


async def test_rotation_reencrypts_everything_under_the_new_key(
    ctx: Context, emulator: RunningEmulator
) -> None:
    setup = await microsoft_credential(ctx, emulator)
    old_keys = read_key_file(ctx.settings.key_file)
    count = await rotate_keys(ctx)
    assert count == 3  # client secret, refresh token, access token
    keys = read_key_file(ctx.settings.key_file)
    assert keys[1:] == old_keys and keys[0] not in old_keys
    only_new = SecretBox([keys[0]])
    cred = await reload(ctx, setup.credential.id)
    integration = await reload_integration(ctx, setup.integration.id)
    assert cred.refresh_token_enc and integration.client_secret_enc
    assert only_new.decrypt(cred.refresh_token_enc) == setup.grant.refresh_token
    assert only_new.decrypt(integration.client_secret_enc) == CLIENT_SECRET

    await rotate_keys(ctx, drop_old=True)
    assert len(read_key_file(ctx.settings.key_file)) == 1


async def test_rotation_with_environment_keys(
    settings: Settings, emulator: RunningEmulator
) -> None:
    old = Fernet.generate_key().decode()
    first = Context.open(Settings(**{**settings.__dict__, "secret_keys": (old,)}))
    setup = await microsoft_credential(first, emulator)
    await first.close()
    new = Fernet.generate_key().decode()
    second = Context.open(Settings(**{**settings.__dict__, "secret_keys": (new, old)}))
    assert await rotate_keys(second) == 3
    cred = await reload(second, setup.credential.id)
    assert cred.refresh_token_enc is not None
    assert SecretBox([new.encode()]).decrypt(cred.refresh_token_enc) == setup.grant.refresh_token
    assert not settings.key_file.exists()
    await second.close()


async def kept_answers(ctx: Context) -> dict[str, str | None]:
    rows = await ctx.db.read(
        lambda s: s.execute(select(IdempotencyKey.key, IdempotencyKey.response))
    )
    return dict(rows.all())


async def test_rotation_reencrypts_the_kept_answers_that_hold_a_secret(
    ctx: Context, admin_api: httpx2.AsyncClient
) -> None:
    asked = {"user": "api-admin@example.com", "name": "bot"}
    made = await admin_api.post("/tokens", json=asked, headers={"idempotency-key": "token-1"})
    assert made.status_code == 201, made.text
    project = {"key": "HELP", "name": "Help desk"}
    added = await admin_api.post("/projects", json=project, headers={"idempotency-key": "help"})
    assert added.status_code == 201, added.text
    before = await kept_answers(ctx)

    assert await rotate_keys(ctx, drop_old=True) == 1  # the kept token: nothing else is secret

    after = await kept_answers(ctx)
    assert after["help"] == before["help"]  # an answer without a secret is kept as it was
    sealed = after["token-1"]
    assert sealed is not None and sealed.startswith("sealed:") and sealed != before["token-1"]
    [only_key] = read_key_file(ctx.settings.key_file)
    kept = json.loads(SecretBox([only_key]).decrypt(sealed.removeprefix("sealed:")))
    assert kept["token"] == made.json()["token"]
