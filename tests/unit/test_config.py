from pathlib import Path

import pytest

from mailgate.config import is_loopback_host, load_settings, require_https_endpoint
from mailgate.errors import BadInput


def test_defaults_run_on_one_machine(tmp_path: Path) -> None:
    settings = load_settings({"MAILGATE_HOME": str(tmp_path)})
    assert settings.home == tmp_path
    assert settings.database_url == f"sqlite:///{tmp_path / 'mailgate.db'}"
    assert settings.base_url == "https://localhost:8443"
    assert settings.redirect_url == "https://localhost:8443/oauth2/callback"
    assert settings.secret_keys == ()


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "mailgate.toml").write_text(
        'base_url = "https://from-file.example"\ndatabase_url = "sqlite:////tmp/file.db"\n'
    )
    settings = load_settings(
        {"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": "https://from-env.example/"}
    )
    assert settings.base_url == "https://from-env.example"
    assert settings.database_url == "sqlite:////tmp/file.db"
    assert settings.redirect_url == "https://from-env.example/oauth2/callback"


def test_unknown_setting_in_the_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "mailgate.toml").write_text('base_ulr = "https://x"\n')
    with pytest.raises(BadInput, match="base_ulr"):
        load_settings({"MAILGATE_HOME": str(tmp_path)})


@pytest.mark.parametrize("url", ["http://mailgate.example", "ftp://x", "mailgate.example", ""])
def test_oauth_needs_an_https_base_url(tmp_path: Path, url: str) -> None:
    settings = load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": url or "x"})
    with pytest.raises(BadInput, match="https://"):
        settings.require_https_base_url()


def test_https_base_url_is_accepted(tmp_path: Path) -> None:
    load_settings(
        {"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": "https://desk.example.com"}
    ).require_https_base_url()


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]", "app.localhost"]
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "example.com", "localhost.example.com", None])
def test_not_loopback_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)


def test_endpoints_must_be_https_except_on_loopback() -> None:
    assert require_https_endpoint("https://idp.example/token", "token endpoint")
    assert require_https_endpoint("http://127.0.0.1:9000/token", "token endpoint")
    with pytest.raises(BadInput, match="token endpoint"):
        require_https_endpoint("http://idp.example/token", "token endpoint")
