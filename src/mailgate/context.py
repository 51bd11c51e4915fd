"""What every service function works with: settings, database, secrets, clock, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mailgate.config import Settings, load_settings
from mailgate.sandbox.pool import ParseLimits, ParserPool
from mailgate.store.db import Database, open_database
from mailgate.store.models import utcnow
from mailgate.store.secretbox import SecretBox, load_secretbox
from mailgate.trust import dev_certificate_path, trust_local_certificate

if TYPE_CHECKING:
    import httpx2

    from mailgate.http import HttpFactory


def new_http_client() -> httpx2.AsyncClient:
    """`mailgate.http.new_http_client`, imported when first needed (most commands make no HTTP
    request: they start faster without the HTTP stack)."""
    from mailgate.http import new_http_client as new

    return new()


def parser_pool(settings: Settings) -> ParserPool:
    """The parsing processes, with the limits the settings give."""
    limits = ParseLimits(seconds=settings.parse_seconds, memory_megabytes=settings.parse_memory_mb)
    return ParserPool(limits)


Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class Context:
    """The process's handles; tests build one with a fake clock and sleep."""

    settings: Settings
    db: Database
    secrets: SecretBox
    clock: Clock = field(default=utcnow)
    sleep: Sleep = field(default=asyncio.sleep)
    http: HttpFactory = field(default=new_http_client)
    # Where received mail is parsed: processes of their own, started when first needed.
    parsers: ParserPool = field(default_factory=ParserPool)

    @classmethod
    def open(cls, settings: Settings | None = None, **overrides: object) -> Context:
        """Load settings, migrate the database if needed, and load the encryption keys."""
        settings = settings or load_settings()
        db = open_database(settings)
        trust_local_certificate(dev_certificate_path(settings.home))
        overrides.setdefault("parsers", parser_pool(settings))
        return cls(settings=settings, db=db, secrets=load_secretbox(settings), **overrides)  # type: ignore[arg-type]

    async def close(self) -> None:
        """End the parsing processes and the database connections (both, whatever happens)."""
        try:
            await self.parsers.close()
        finally:
            await self.db.dispose()
