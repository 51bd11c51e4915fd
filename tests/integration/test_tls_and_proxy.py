"""Outbound HTTPS: certificates are verified, and HTTPS_PROXY is honoured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from tests.support.cli import Cli
from tests.support.emulator import RunningEmulator
from tests.support.keeper import CLIENT_ID, CLIENT_SECRET, TENANT
from tests.support.proxy import ConnectProxy


@pytest.fixture
def tls_emulator(tmp_path: Path) -> Iterator[tuple[RunningEmulator, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with RunningEmulator(ssl_certfile=cert_file, ssl_keyfile=key_file) as emulator:
        emulator.state.register_client("microsoft", CLIENT_ID, CLIENT_SECRET, tenant_id=TENANT)
        yield emulator, ca_file


def add_integration(cli: Cli, emulator: RunningEmulator, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(CLIENT_SECRET)
    added = cli(
        "integration",
        "add",
        "m365",
        "--provider",
        "microsoft",
        "--client-id",
        CLIENT_ID,
        "--client-secret-file",
        str(secret),
        "--tenant",
        TENANT,
        "--authority",
        emulator.url,
    )
    assert added.code == 0, added.stderr


def test_untrusted_certificate_is_refused(
    cli: Cli, tls_emulator: tuple[RunningEmulator, Path], tmp_path: Path
) -> None:
    emulator, _ = tls_emulator
    assert emulator.url.startswith("https://")
    add_integration(cli, emulator, tmp_path)
    result = cli("integration", "test", "m365", "--json")
    assert result.code == 1
    assert "TLS certificate is not trusted" in result.json()["steps"][0]["detail"]
    assert emulator.state.count_requests(endpoint="token") == 0


def test_trusted_through_ssl_cert_file_and_https_proxy(
    cli: Cli, tls_emulator: tuple[RunningEmulator, Path], tmp_path: Path
) -> None:
    emulator, ca_file = tls_emulator
    add_integration(cli, emulator, tmp_path)
    with ConnectProxy() as proxy:
        env = {"SSL_CERT_FILE": str(ca_file), "HTTPS_PROXY": proxy.url, "NO_PROXY": ""}
        tested = cli("integration", "test", "m365", **env)
        assert tested.code == 0, tested.stdout + tested.stderr
        authorized = cli("integration", "authorize", "m365", "--client-credentials", **env)
        assert authorized.code == 0, authorized.stderr
    host_port = emulator.url.removeprefix("https://")
    assert proxy.tunnels.count(host_port) == 2
    assert emulator.state.count_requests(endpoint="token", grant_type="client_credentials") == 1
