"""Settings from the environment and `$MAILGATE_HOME/mailgate.toml`, and the HTTPS rules.

The environment wins over the file. Every value has a default that runs on one machine:
data under `./var`, SQLite, https://localhost:8443.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from mailgate.errors import BadInput

CALLBACK_PATH = "/oauth2/callback"

_FILE_KEYS = {
    "home": "MAILGATE_HOME",
    "database_url": "MAILGATE_DATABASE_URL",
    "base_url": "MAILGATE_BASE_URL",
    "secret_keys": "MAILGATE_SECRET_KEYS",
    "admin_email": "MAILGATE_ADMIN_EMAIL",
}


@dataclass(frozen=True)
class Settings:
    """What a mailgate process is configured with."""

    home: Path
    database_url: str
    base_url: str
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    admin_email: str | None = None  # who is told by mail when something needs attention

    @property
    def redirect_url(self) -> str:
        """The OAuth 2.0 redirect URL to register at the provider, ready to copy."""
        return self.base_url.rstrip("/") + CALLBACK_PATH

    @property
    def key_file(self) -> Path:
        return self.home / "secret.key"

    @property
    def uses_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def require_https_base_url(self) -> None:
        """Refuse OAuth 2.0 work unless the base URL is https:// (providers require it)."""
        try:
            parts = urlsplit(self.base_url)
            host = parts.hostname
        except ValueError:
            host = None
        if parts.scheme != "https" or not host:
            raise BadInput(
                f"MAILGATE_BASE_URL is {self.base_url!r}, but OAuth 2.0 needs an https:// base URL "
                "(providers only redirect to HTTPS): set MAILGATE_BASE_URL to the https:// address "
                "users reach mailgate at."
            )


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings: environment first, then `$MAILGATE_HOME/mailgate.toml`, then defaults."""
    env = dict(os.environ if environ is None else environ)
    home = Path(env.get("MAILGATE_HOME") or "var")
    from_file = _read_file(home / "mailgate.toml")

    def pick(key: str, default: str) -> str:
        return env.get(_FILE_KEYS[key]) or from_file.get(key) or default

    home = Path(pick("home", str(home))).absolute()
    database_url = pick("database_url", f"sqlite:///{home / 'mailgate.db'}")
    base_url = pick("base_url", "https://localhost:8443").rstrip("/")
    keys = tuple(k.strip() for k in pick("secret_keys", "").split(",") if k.strip())
    admin = pick("admin_email", "").strip().lower() or None
    if admin is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", admin):
        raise BadInput(
            f"MAILGATE_ADMIN_EMAIL {admin!r} is not an email address: give the address that "
            "gets mailgate's alerts."
        )
    return Settings(
        home=home, database_url=database_url, base_url=base_url, secret_keys=keys, admin_email=admin
    )


def _read_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"{path} is not valid TOML ({exc}): fix or remove the file.") from None
    unknown = sorted(set(data) - set(_FILE_KEYS))
    if unknown:
        raise BadInput(
            f"{path} has unknown settings {', '.join(unknown)}: "
            f"the known ones are {', '.join(sorted(_FILE_KEYS))}."
        )
    return {k: str(v) for k, v in data.items()}


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() in {"localhost", "localhost."} or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https_endpoint(url: str, what: str) -> str:
    """Return `url` if it is https:// (or http:// on a loopback address), else raise BadInput."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        raise BadInput(
            f"The {what} {url!r} is not a valid URL: give the provider's https:// address."
        ) from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    raise BadInput(
        f"The {what} {url!r} must be an https:// URL (plain http:// is allowed only on loopback "
        "addresses): give the provider's https:// address."
    )
