"""Encryption of stored secrets (client secrets, refresh and access tokens).

Keys come from `MAILGATE_SECRET_KEYS` (newest first, comma-separated) or else from the key file
`$MAILGATE_HOME/secret.key` (one key a line, newest first), created 0600 on first use.
Encryption always uses the newest key; decryption tries every key, so a rotation can re-encrypt
at its own pace (cryptography's MultiFernet).

The same keys also key the digests that must not be recomputable from the database alone
(`SecretBox.digests`): a separate key derived from each with HKDF, one per purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mailgate.config import Settings
from mailgate.errors import BadInput, MailgateError
from mailgate.logs import Secret

# Starts a stored text that is encrypted where others beside it are not (a kept API answer
# that holds a secret); `mailgate keys rotate` re-encrypts those too, keeping the prefix.
SEALED = "sealed:"


class SecretBox(Secret):
    """Encrypts and decrypts short secrets with the configured keys (a log line shows none)."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        self._keys = [base64.urlsafe_b64decode(k) for k in keys]
        self._derived: dict[bytes, list[bytes]] = {}

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise MailgateError(
                "A stored secret cannot be decrypted with the configured keys: give mailgate the "
                "key it was encrypted with (MAILGATE_SECRET_KEYS or the key file under "
                "MAILGATE_HOME)."
            ) from None

    def digests(self, purpose: bytes, data: bytes) -> list[str]:
        """HMAC-SHA256 of `data` (hex) under a key derived for `purpose` from each configured
        key, newest first: someone who can read the database but not the keys can't recompute
        one to test a guess of what `data` held (a password in a request's body)."""
        derived = self._derived.get(purpose)
        if derived is None:
            derived = self._derived[purpose] = [
                HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)
                for key in self._keys
            ]
        return [hmac.new(key, data, hashlib.sha256).hexdigest() for key in derived]

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt `ciphertext` under the newest key."""
        try:
            return self._fernet.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise MailgateError(
                "A stored secret cannot be decrypted with the configured keys, so it cannot be "
                "re-encrypted: add the key it was encrypted with and rotate again."
            ) from None


def parse_keys(values: list[str], source: str) -> list[bytes]:
    """Validate Fernet keys (url-safe base64 of 32 bytes)."""
    keys = []
    for value in values:
        key = value.strip().encode("ascii", "replace")
        try:
            Fernet(key)
        except ValueError:
            raise BadInput(
                f"{source} holds a value that is not an encryption key: each key must be 32 "
                "url-safe base64-encoded bytes, as `mailgate keys generate` prints."
            ) from None
        keys.append(key)
    return keys


def read_key_file(path: Path) -> list[bytes]:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII"
        raise BadInput(
            f"The key file {path} cannot be read ({reason}): restore it from a backup, or give "
            "the keys in MAILGATE_SECRET_KEYS."
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise BadInput(
            f"The key file {path} is empty: restore it from a backup (secrets stored with a "
            "lost key cannot be decrypted), or give the keys in MAILGATE_SECRET_KEYS."
        )
    return parse_keys(lines, str(path))


def _write_temporary(path: Path, keys: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write("".join(k.decode("ascii") + "\n" for k in keys))
        fh.flush()
        os.fsync(fh.fileno())
    return Path(name)


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace the key file atomically, mode 0600."""
    os.replace(_write_temporary(path, keys), path)


def create_key_file(path: Path) -> None:
    """Create the key file unless another process just did (the first one wins)."""
    tmp = _write_temporary(path, [Fernet.generate_key()])
    try:
        os.link(tmp, path)  # fails if the file exists: never replaces a key in use
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def load_secretbox(settings: Settings) -> SecretBox:
    """The SecretBox for these settings, creating the key file on first use."""
    if settings.secret_keys:
        return SecretBox(parse_keys(list(settings.secret_keys), "MAILGATE_SECRET_KEYS"))
    path = settings.key_file
    if not path.exists():
        create_key_file(path)
    return SecretBox(read_key_file(path))
