"""`keys rotate`: re-encrypt every stored secret under a new key.

With the key file: a new key is written first (old keys kept after it), then every secret is
re-encrypted in one transaction. A crash at any point leaves every secret readable. The old keys
stay in the file by default, because a process started before the rotation still encrypts with
the key it loaded; `drop_old` removes them once every process has been restarted.
With MAILGATE_SECRET_KEYS the admin puts the new key first in the variable (keeping the old one
after it) and runs this to re-encrypt.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.models import Credential, Integration
from mailgate.store.secretbox import SecretBox, read_key_file, write_key_file

_SECRET_COLUMNS = (
    (Integration, ("client_secret_enc",)),
    (Credential, ("refresh_token_enc", "access_token_enc")),
)


async def reencrypt_all(ctx: Context, box: SecretBox) -> int:
    """Re-encrypt every secret column under `box`'s newest key, in one transaction."""
    count = 0
    async with ctx.db.session() as session:
        for model, columns in _SECRET_COLUMNS:
            for row in (await session.scalars(select(model))).all():
                for column in columns:
                    value = getattr(row, column)
                    if value:
                        setattr(row, column, box.rotate(value))
                        count += 1
        await session.commit()
    return count


async def rotate_keys(ctx: Context, *, drop_old: bool = False) -> int:
    if ctx.settings.secret_keys:
        if len(ctx.settings.secret_keys) < 2:
            raise BadInput(
                "MAILGATE_SECRET_KEYS holds one key, so there is nothing to rotate to: put a new "
                "key (`mailgate keys generate`) first in it, keep the old one after it, and run "
                "`mailgate keys rotate` again."
            )
        return await reencrypt_all(ctx, ctx.secrets)
    path = ctx.settings.key_file
    old_keys = read_key_file(path)
    new_key = Fernet.generate_key()
    write_key_file(path, [new_key, *old_keys])
    box = SecretBox([new_key, *old_keys])
    count = await reencrypt_all(ctx, box)
    kept = [new_key] if drop_old else [new_key, *old_keys]
    write_key_file(path, kept)
    ctx.secrets = SecretBox(kept)
    return count
