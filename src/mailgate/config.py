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
    "parse_seconds": "MAILGATE_PARSE_SECONDS",
    "parse_memory_mb": "MAILGATE_PARSE_MEMORY_MB",
    "trusted_proxies": "MAILGATE_TRUSTED_PROXIES",
}


@dataclass(frozen=True)
class Settings:
    """What a mailgate process is configured with."""

    home: Path
    database_url: str
    base_url: str
    secret_keys: tuple[str, ...] = field(default=(), repr=False)
    admin_email: str | None = None  # who is told by mail when something needs attention
    # What parsing one received message may cost (its parsing process): seconds, plus 2 s per
    # MB of message; memory of the parsing process in MB (0: no limit).
    parse_seconds: float = 20.0
    parse_memory_mb: int = 2048
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks); from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()

    @property
    def redirect_url(self) -> str:
        """The OAuth 2.0 redirect URL to register at the provider, ready to copy."""
        return self.base_url.rstrip("/") + CALLBACK_PATH

    @property
    def key_file(self) -> Path:
        return self.home / "secret.key"

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
    base_url = check_base_url(pick("base_url", "https://localhost:8443").rstrip("/"))
    keys = tuple(k.strip() for k in pick("secret_keys", "").split(",") if k.strip())
    admin = pick("admin_email", "").strip().lower() or None
    if admin is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", admin):
        raise BadInput(
            f"MAILGATE_ADMIN_EMAIL {admin!r} is not an email address: give the address that "
            "gets mailgate's alerts."
        )
    return Settings(
        home=home,
        database_url=database_url,
        base_url=base_url,
        secret_keys=keys,
        admin_email=admin,
        parse_seconds=_number(
            "MAILGATE_PARSE_SECONDS",
            pick("parse_seconds", "20"),
            float,
            minimum=0.001,
            maximum=MAX_PARSE_SECONDS,
        ),
        parse_memory_mb=_parse_memory(pick("parse_memory_mb", "2048")),
        trusted_proxies=_networks(pick("trusted_proxies", "")),
    )


def _networks(value: str) -> tuple[str, ...]:
    """MAILGATE_TRUSTED_PROXIES: comma-separated addresses or networks (10.0.0.0/8)."""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise BadInput(
                f"MAILGATE_TRUSTED_PROXIES has {part!r}, which is not an address or a network: "
                "give the reverse proxy's addresses, comma-separated (e.g. 10.0.0.5,10.1.0.0/16)."
            ) from None
    return tuple(networks)


def _parse_memory(value: str) -> int:
    megabytes = int(
        _number("MAILGATE_PARSE_MEMORY_MB", value, int, minimum=0, maximum=MAX_PARSE_MEMORY_MB)
    )
    if 0 < megabytes < MIN_PARSE_MEMORY_MB:
        # Below it a parsing process cannot even start: said now, not at the first message.
        raise BadInput(
            f"MAILGATE_PARSE_MEMORY_MB is {value!r}: give 0 (no limit) or at least "
            f"{MIN_PARSE_MEMORY_MB} (a parsing process needs about 45 MB to start)."
        )
    return megabytes


# A parse may take a day at most: a deadline is what stops a message that never ends.
MAX_PARSE_SECONDS = 86_400.0
# 1 TB: past about 8.8 TB the limit no longer fits the kernel's (a signed 64-bit byte count), a
# parsing process cannot start, and every message would be quarantined as unparsable.
MAX_PARSE_MEMORY_MB = 1_048_576
MIN_PARSE_MEMORY_MB = 64


def _number(
    name: str,
    value: str,
    kind: type[float] | type[int],
    *,
    minimum: float,
    maximum: float,
) -> float:
    try:
        number = kind(str(value).strip())
    except ValueError:
        number = None
    # NaN compares false with everything, so it is refused as outside the range.
    if number is None or not minimum <= number <= maximum:
        raise BadInput(
            f"{name} is {value!r}: give a {'whole ' if kind is int else ''}number of at least "
            f"{minimum:g} and at most {maximum:.0f}."
        )
    return number


# A DNS host name (RFC 1123 §2.1): labels of letters, digits and hyphens, not at either end.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# A path of RFC 3986 §3.3: unreserved, percent-encoded, sub-delims, ":", "@" and "/".
_PATH = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")


def check_base_url(url: str) -> str:
    """Return `url` if it can be the public address of mailgate, else raise BadInput.

    Every link mailgate makes and every redirect it sends starts with it, so it must be an
    absolute https:// URL (http:// only on a loopback host, for a machine of one's own) with a
    valid host, and nothing a link could not carry after it: no spaces, user, query or fragment.
    """
    problem = _base_url_problem(url)
    if problem:
        raise BadInput(
            f"MAILGATE_BASE_URL {url!r} is not a usable base URL ({problem}): set it to the "
            "https:// address users reach mailgate at, such as https://desk.example.com."
        )
    return url


def _base_url_problem(url: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in url):
        return "it holds a space or a control character"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it cannot be read as a URL, or its port is not a number up to 65535"
    if parts.scheme not in ("https", "http"):
        return "it must start with https://"
    if not parts.hostname:
        return "it names no host"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "http:// is for loopback hosts only"
    if "@" in parts.netloc:
        return "it must not hold a user name or password"
    if "?" in url or "#" in url:
        return "it must not have a query or a fragment"
    if port == 0:
        return "port 0 is no port"
    if not _is_host(parts.hostname):
        if not parts.hostname.isascii():
            return "write an international host name in the xn-- form browsers send"
        return "its host is not a valid host name or IP address"
    if not _PATH.fullmatch(parts.path):
        return "its path holds characters a URL must not carry as they are"
    return None


def _is_host(host: str) -> bool:
    """A DNS name or an IP address (urlsplit gives an IPv6 address without its brackets)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


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
