"""PostgreSQL connections give up on a vanished server in seconds, not libpq's minutes or the
operating system's hours; a URL's own values win."""

from __future__ import annotations

from mailgate.store.db import Database


async def _parameters(url: str) -> dict[str, str]:
    """The libpq parameters of a connection of the write path's engine and of the async one."""
    database = Database(url)
    try:
        with database.sync_session() as session:
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            written = dict(raw.info.get_parameters())  # type: ignore[attr-defined]
        async with database.engine.connect() as connection:
            raw_async = await connection.get_raw_connection()
            read = dict(raw_async.driver_connection.info.get_parameters())  # type: ignore[union-attr]
        assert read == written
        return written
    finally:
        await database.dispose()


async def test_connections_have_timeouts_and_keepalives(postgres_url: str) -> None:
    parameters = await _parameters(postgres_url)
    assert parameters["connect_timeout"] == "10"
    assert parameters["keepalives_idle"] == "10"
    assert parameters["tcp_user_timeout"] == "30000"


async def test_the_urls_own_values_win(postgres_url: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    parameters = await _parameters(f"{postgres_url}{separator}connect_timeout=3")
    assert parameters["connect_timeout"] == "3"
    assert parameters["keepalives_count"] == "3"
