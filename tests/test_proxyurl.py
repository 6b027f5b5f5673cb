"""proxy_lab/proxyurl.py: the one parser of proxy URLs, which never shows a password it refuses."""

from __future__ import annotations

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.chain import UpstreamProxy
from proxy_lab.proxyurl import parse_proxy_url, redact
from proxy_lab.targets.url import UrlTarget


def test_a_proxy_url_with_credentials_gives_host_port_user_and_password_unquoted() -> None:
    assert parse_proxy_url("http://meter:S3cr%40t@10.0.0.5:8080") == ("10.0.0.5", 8080, "meter", "S3cr@t")
    assert parse_proxy_url("http://[::1]:3128/") == ("::1", 3128, None, None)
    assert parse_proxy_url("http://meter@127.0.0.1:3128") == ("127.0.0.1", 3128, "meter", None)
    assert UpstreamProxy.parse("http://meter@127.0.0.1:3128").basic() == "Basic bWV0ZXI6"  # meter: and no password


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("socks5://u:topsecret@127.0.0.1:1080", "is a SOCKS proxy"),
        ("ftp://u:topsecret@127.0.0.1:21", "expected http://"),
        ("https://u:topsecret@127.0.0.1:3129", "expected http://"),
        ("http://u:topsecret@127.0.0.1", "with a host and a port"),
        ("http://u:topsecret@127.0.0.1:99999", "is malformed"),
        ("http://u:topsecret@127.0.0.1:80x", "is malformed"),
        ("http://u:topsecret@127.0.0.1:3128/path", "with no path"),
    ],
)
def test_every_refused_proxy_url_is_named_without_its_password_wherever_it_is_given(url: str, reason: str) -> None:
    for parse, label in (
        (parse_proxy_url, "proxy URL 'http"),
        (UpstreamProxy.parse, "upstream proxy URL"),
        (UrlTarget, "proxy URL"),
    ):
        with pytest.raises(ConfigError) as info:
            parse(url)
        message = str(info.value)
        assert reason in message and "topsecret" not in message and "u:***@" in message
        assert label.split(" '")[0] in message


def test_a_well_formed_url_parses_the_same_for_the_url_target_and_the_upstream() -> None:
    url = "http://meter:pw@127.0.0.1:3129"
    target, upstream = UrlTarget(url), UpstreamProxy.parse(url)
    assert (target.host, target.port) == (upstream.host, upstream.port) == ("127.0.0.1", 3129)
    assert (upstream.user, upstream.password) == ("meter", "pw")


def test_redact_hides_only_the_password() -> None:
    assert redact("http://meter:pw@h:1") == "http://meter:***@h:1"
    assert redact("http://meter@h:1") == "http://meter@h:1"  # no password: nothing to hide
    assert redact("http://h:1") == "http://h:1"  # negative control: no user information at all


def test_a_proxy_config_takes_its_upstream_as_a_url_and_refuses_anything_else() -> None:
    from proxy_lab.proxy import ProxyConfig

    config = ProxyConfig(upstream="http://meter:pw@127.0.0.1:3129")  # type: ignore[arg-type]  # as TOML gives it
    assert config.upstream == UpstreamProxy("127.0.0.1", 3129, "meter", "pw")
    with pytest.raises(ConfigError, match="proxy upstream: 3129: expected an UpstreamProxy"):
        ProxyConfig(upstream=3129)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        ProxyConfig(upstream="socks5://meter:topsecret@127.0.0.1:1080")  # type: ignore[arg-type]
    assert "topsecret" not in str(info.value)
