"""`keys rotate`: re-encrypt every stored secret under a new key.

With the key file: a new key is written first (old keys kept after it), then every secret is
re-encrypted in one transaction. A crash at any point leaves every secret readable. The old keys
stay in the file by default, because a process started before the rotation still encrypts with
the key it loaded; `drop_old` removes them once every process has been restarted.
With MAILGATE_SECRET_KEYS the admin puts the new key first in the variable (keeping the old one
after it) and runs this to re-encrypt.
The API's kept answers that hold a secret (`sealed:` and a ciphertext, beside plain ones) are
re-encrypted too, so a retried request still gets its answer once the old key is dropped.
"""

from __future__ import annotations

from cryptography.fernet import Fernet
from sqlalchemy import select, update

from mailgate.context import Context
from mailgate.errors import BadInput
from mailgate.store.models import Credential, IdempotencyKey, Integration, Webhook
from mailgate.store.secretbox import SEALED, SecretBox, read_key_file, write_key_file

# Each table's encrypted columns, and what starts an encrypted value there ("": every value).
_SECRET_COLUMNS = (
    (Integration, ("client_secret_enc",), ""),
    (Credential, ("refresh_token_enc", "access_token_enc"), ""),
    (Webhook, ("secret_enc",), ""),
    (IdempotencyKey, ("response",), SEALED),
)


def _rotated(box: SecretBox, value: str, prefix: str) -> str:
    return prefix + box.rotate(value.removeprefix(prefix))


async def reencrypt_all(ctx: Context, box: SecretBox) -> int:
    """Re-encrypt every secret column under `box`'s newest key.

    Each value is replaced only if it is still the one read (compare-and-set), so a refresh
    that commits a rotated token meanwhile is never overwritten with the old one; such a value
    is read again and re-encrypted in the next pass.
    """
    count = 0
    for _ in range(5):
        stale = 0
        async with ctx.db.session() as session:
            for model, columns, prefix in _SECRET_COLUMNS:
                query = select(model.id, *(getattr(model, c) for c in columns))
                if prefix:
                    query = query.where(getattr(model, columns[0]).startswith(prefix))
                rows = (await session.execute(query)).all()
                for row_id, *values in rows:
                    for column, value in zip(columns, values, strict=True):
                        if not value or not value.startswith(prefix):
                            continue
                        rotated = _rotated(box, value, prefix)
                        result = await session.execute(
                            update(model)
                            .where(model.id == row_id, getattr(model, column) == value)
                            .values({column: rotated})
                            .execution_options(synchronize_session=False)
                        )
                        if result.rowcount:  # type: ignore[attr-defined]
                            count += 1
                        else:
                            stale += 1
                await session.commit()
        if not stale:
            return count
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
