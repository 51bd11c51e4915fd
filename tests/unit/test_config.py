from pathlib import Path

import pytest
from tests.support.cli import Cli

from mailgate.config import (
    MAX_PARSE_MEMORY_MB,
    MAX_PARSE_SECONDS,
    is_loopback_host,
    load_settings,
    require_https_endpoint,
)
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


@pytest.mark.parametrize("url", ["http://localhost:8443", "http://127.0.0.1:8080/desk"])
def test_oauth_needs_an_https_base_url(tmp_path: Path, url: str) -> None:
    # http:// is a base URL on a loopback host only, and even there providers want https://.
    settings = load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": url})
    with pytest.raises(BadInput, match="https://"):
        settings.require_https_base_url()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://exa mple.com", "space"),
        ("https://desk.example.com/mail gate", "space"),
        ("https://desk.example.com\r\nLocation: https://evil.test", "control character"),
        ("http://mailgate.example", "loopback hosts only"),
        ("ftp://x", "https://"),
        ("mailgate.example", "https://"),
        ("x", "https://"),
        ("https://", "no host"),
        ("https://:8443", "no host"),
        ("https://admin:secret@desk.example.com", "user name or password"),
        ("https://desk.example.com?next=/", "query or a fragment"),
        ("https://desk.example.com/#top", "query or a fragment"),
        ("https://desk.example.com:99999", "65535"),
        ("https://desk.example.com:0", "port 0"),
        ("https://-desk.example.com", "not a valid host name"),
        ("https://desk_1.example.com", "not a valid host name"),
        ("https://desk..example.com", "not a valid host name"),
        ("https://" + "a" * 64 + ".example.com", "not a valid host name"),
        ("https://bücher.example", "xn--"),
        ('https://desk.example.com/"><script>', "path"),
    ],
)
def test_a_base_url_that_is_no_address_is_refused_at_start(
    tmp_path: Path, url: str, why: str
) -> None:
    with pytest.raises(BadInput, match="MAILGATE_BASE_URL") as refused:
        load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": url})
    sentence = str(refused.value)
    assert why in sentence and sentence.endswith(".") and "\n" not in sentence.replace(url, "")


def test_a_bad_base_url_in_the_file_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "mailgate.toml").write_text('base_url = "https://exa mple.com"\n')
    with pytest.raises(BadInput, match="space"):
        load_settings({"MAILGATE_HOME": str(tmp_path)})


@pytest.mark.parametrize(
    "url",
    [
        "https://desk.example.com",
        "https://desk.example.com/",
        "https://desk.example.com:8443/mailgate",
        "https://example.com/~help-desk/mail%20gate",
        "https://xn--bcher-kva.example",
        "https://desk.example.com.",
        "https://192.0.2.7",
        "https://[2001:db8::7]:8443",
        "https://localhost:8443",
        "http://localhost:8443",
        "http://[::1]:8080",
    ],
)
def test_base_urls_users_can_reach_are_accepted(tmp_path: Path, url: str) -> None:
    settings = load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_BASE_URL": url})
    assert settings.base_url == url.rstrip("/")


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


def test_parse_limits_come_from_the_environment_or_the_file(tmp_path: Path) -> None:
    defaults = load_settings({"MAILGATE_HOME": str(tmp_path)})
    assert (defaults.parse_seconds, defaults.parse_memory_mb) == (20.0, 2048)
    (tmp_path / "mailgate.toml").write_text("parse_seconds = 45\nparse_memory_mb = 4096\n")
    settings = load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_PARSE_MEMORY_MB": "0"})
    assert (settings.parse_seconds, settings.parse_memory_mb) == (45.0, 0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAILGATE_PARSE_SECONDS", "0"),
        ("MAILGATE_PARSE_SECONDS", "-5"),
        ("MAILGATE_PARSE_SECONDS", "nan"),
        ("MAILGATE_PARSE_SECONDS", "ten"),
        ("MAILGATE_PARSE_MEMORY_MB", "1.5"),
        ("MAILGATE_PARSE_MEMORY_MB", "-1"),
        # No deadline at all, and a limit no process can be given (its parsing process would
        # fail to start, and every message would be quarantined as unparsable).
        ("MAILGATE_PARSE_SECONDS", "inf"),
        ("MAILGATE_PARSE_SECONDS", "1e400"),
        ("MAILGATE_PARSE_MEMORY_MB", "10000000000000"),
    ],
)
def test_a_parse_limit_that_is_no_number_is_refused(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(BadInput, match=f"^{name} is '{value}': give a") as refused:
        load_settings({"MAILGATE_HOME": str(tmp_path), name: value})
    assert "at most" in str(refused.value)


def test_the_largest_parse_limits_are_accepted(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MAILGATE_HOME": str(tmp_path),
            "MAILGATE_PARSE_SECONDS": str(MAX_PARSE_SECONDS),
            "MAILGATE_PARSE_MEMORY_MB": str(MAX_PARSE_MEMORY_MB),
        }
    )
    assert (settings.parse_seconds, settings.parse_memory_mb) == (
        MAX_PARSE_SECONDS,
        MAX_PARSE_MEMORY_MB,
    )
    # A parsing process starts with the largest memory limit.
    message = tmp_path / "one.eml"
    message.write_text("From: a@example.net\nSubject: hi\n\nhello\n")
    parsed = Cli(tmp_path / "home")(
        "parse", str(message), MAILGATE_PARSE_MEMORY_MB=str(MAX_PARSE_MEMORY_MB)
    )
    assert parsed.code == 0 and "'hi' from a@example.net" in parsed.stdout, parsed.stderr


def test_a_parse_memory_limit_too_small_to_start_a_parser_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="give 0 \\(no limit\\) or at least 64"):
        load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_PARSE_MEMORY_MB": "63"})
    assert load_settings({"MAILGATE_HOME": str(tmp_path), "MAILGATE_PARSE_MEMORY_MB": "64"})


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    env = {"MAILGATE_HOME": str(tmp_path), "MAILGATE_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16,::1"}
    assert load_settings(env).trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "::1/128")
    assert load_settings({"MAILGATE_HOME": str(tmp_path)}).trusted_proxies == ()
    with pytest.raises(BadInput, match=r"MAILGATE_TRUSTED_PROXIES has 'proxy\.local'"):
        load_settings({**env, "MAILGATE_TRUSTED_PROXIES": "proxy.local"})
