"""`mailgate keys`: the encryption keys of stored secrets."""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography.fernet import Fernet

from mailgate.cli.common import run
from mailgate.context import Context
from mailgate.keys import rotate_keys

app = typer.Typer(help="Encryption keys of stored secrets.", no_args_is_help=True)


@app.command("rotate")
def keys_rotate(
    drop_old_keys: Annotated[
        bool,
        typer.Option(
            "--drop-old-keys",
            help="Remove the old keys from the key file (restart every mailgate process first).",
        ),
    ] = False,
) -> None:
    """Use a new encryption key and re-encrypt every stored secret under it."""

    async def work(ctx: Context) -> int:
        return await rotate_keys(ctx, drop_old=drop_old_keys)

    count = run(work)
    typer.echo(f"re-encrypted {count} stored secret(s) under the new key")


@app.command("generate")
def keys_generate() -> None:
    """Print a new encryption key (for MAILGATE_SECRET_KEYS)."""
    typer.echo(Fernet.generate_key().decode("ascii"))
