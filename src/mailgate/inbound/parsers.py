"""Received mail parsed in the sandbox's processes (`mailgate.sandbox`), with its types back.

A parsing process runs `parse.parse_message` and sends back what it returned; the pool, which
knows nothing of mail, hands it on as an object. These functions give it its type again, and
refuse anything else: a parse function that answers something other than a message is a broken
installation, said to the admin, never a message taken as parsed.
"""

from __future__ import annotations

from mailgate.errors import OperationFailed
from mailgate.inbound.parse import InboundMessage
from mailgate.sandbox.pool import ParserPool, Unparsable

__all__ = ["Unparsable", "parse_all", "parse_one"]


def _parsed(result: object) -> InboundMessage | Unparsable:
    if isinstance(result, InboundMessage | Unparsable):
        return result
    raise OperationFailed(
        f"The parsing process answered a {type(result).__name__}, not a message: check "
        "the installation (MAILGATE_* settings, the parse function)."
    )


async def parse_all(pool: ParserPool, raws: list[bytes]) -> list[InboundMessage | Unparsable]:
    """Each message parsed within the pool's limits (or why it could not be), in order."""
    return [_parsed(result) for result in await pool.parse_all(raws)]


async def parse_one(pool: ParserPool, raw: bytes) -> InboundMessage | Unparsable:
    """One message, parsed within the pool's limits, or why it could not be."""
    return _parsed(await pool.parse_one(raw))
