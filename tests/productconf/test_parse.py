"""A user's squid.conf or tinyproxy.conf is read losslessly, and a file the lab cannot use is refused in one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.productconf import ProductConfigError, parse_config, text
from proxy_lab.productconf.ports import choose_port
from tests.productconf.productconf_helpers import INSTALLED, STOCK_SQUID, STOCK_TINYPROXY


@pytest.mark.parametrize(("path", "product"), [(STOCK_SQUID, "squid"), (STOCK_TINYPROXY, "tinyproxy")])
def test_debians_stock_file_comes_back_byte_for_byte(path: Path, product: str) -> None:
    model = parse_config(path, product)
    assert text(model).encode() == path.read_bytes()
    assert model.main.data() == path.read_bytes()


@pytest.mark.parametrize("product", ["squid", "tinyproxy"])
def test_the_installed_stock_file_comes_back_byte_for_byte_when_present(product: str) -> None:
    path = INSTALLED[product]
    if not path.exists():
        pytest.skip(f"{path} is not installed here")
    assert parse_config(path, product).main.data() == path.read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        b"http_port 3128\r\nacl a src 10.0.0.0/8\r\nhttp_access allow a\r\n",  # CRLF line endings
        b"# caf\xe9 (Latin-1 comment)\nhttp_port 3128",  # not UTF-8, no final line break
        b"http_port 3128\n\n   \n\t# indented comment\nacl a port 80 \\\n   443\n",  # blanks and a continuation
    ],
)
def test_odd_files_come_back_byte_for_byte(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "squid.conf"
    f.write_bytes(content)
    assert parse_config(f, "squid").main.data() == content


def test_the_stock_squid_rules_are_read_in_squids_order() -> None:
    model = parse_config(STOCK_SQUID, "squid")
    rules = [str(d) for d in model.named("http_access")]
    assert rules[:2] == ["http_access deny !Safe_ports", "http_access deny CONNECT !SSL_ports"]
    assert rules[-2:] == ["http_access allow localhost", "http_access deny all"]
    acl = next(d for d in model.named("acl") if d.args[:1] == ("localnet",))
    assert acl.args == ("localnet", "src", "0.0.0.1-0.255.255.255")  # the trailing comment is not an argument


def test_a_continued_line_is_one_directive_spanning_its_lines(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\nacl a port 80 \\\n   443\nhttp_access allow a\n")
    d = next(d for d in parse_config(f, "squid").directives if d.name == "acl")
    assert (d.line, d.last_line, d.args) == (2, 3, ("a", "port", "80", "443"))


def test_a_quoted_acl_file_is_read_and_a_missing_one_recorded(tmp_path: Path) -> None:
    (tmp_path / "blocked.txt").write_text("# sites\n.example.com\nbad.example.org  # comment\n\n")
    f = tmp_path / "squid.conf"
    f.write_text(f'http_port 3128\nacl blocked dstdomain "{tmp_path}/blocked.txt"\nacl gone dstdomain "{tmp_path}/gone.txt"\n')
    model = parse_config(f, "squid")
    assert model.file_values[str(tmp_path / "blocked.txt")] == (".example.com", "bad.example.org")
    assert [(Path(r.path).name, r.exists) for r in model.references] == [("blocked.txt", True), ("gone.txt", False)]


def test_includes_are_followed_in_place_with_globs(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("http_access deny all\n")
    (tmp_path / "conf.d" / "a.conf").write_text("acl meter src 10.20.30.40\nhttp_access allow meter\n")
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\ninclude conf.d/*.conf\nhttp_access allow all\n")
    model = parse_config(f, "squid")
    assert [str(d) for d in model.directives] == [
        "http_port 3128", "include conf.d/*.conf", "acl meter src 10.20.30.40", "http_access allow meter",
        "http_access deny all", "http_access allow all",
    ]  # fmt: skip
    assert [p.path.name for p in model.includes] == ["a.conf", "b.conf"]


def test_an_include_of_itself_is_refused_naming_the_line(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3128\ninclude squid.conf\n")
    with pytest.raises(ProductConfigError, match=r"squid.conf line 2: include squid.conf includes itself"):
        parse_config(f, "squid")


def test_a_tinyproxy_file_given_as_squid_is_refused_naming_its_line() -> None:
    with pytest.raises(ProductConfigError) as err:
        parse_config(STOCK_TINYPROXY, "squid")
    assert "line 15: `User` is a tinyproxy directive" in str(err.value) and "--product tinyproxy" in str(err.value)
    assert isinstance(err.value, ConfigError) and len(str(err.value).splitlines()) == 1


def test_a_squid_file_given_as_tinyproxy_is_refused_naming_its_line() -> None:
    with pytest.raises(ProductConfigError, match=r"line \d+: `acl` is a Squid directive.*--product squid"):
        parse_config(STOCK_SQUID, "tinyproxy")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x1f\x8b\x08\x00\x00\x00\x00", "not a text file"),  # a gzip file
        (b"acl a src 10.0.0.0/8\nhttp_access allow a\n", "no `http_port` line"),
        (b"http_port 3129 intercept\nhttp_access allow all\n", "no forward-proxy `http_port`"),
        (b"visible_hostname x\nfoo bar\n", None),  # a Squid file with a port missing: the port is named
    ],
)
def test_a_file_the_meter_cannot_use_is_refused_in_one_line(tmp_path: Path, content: bytes, expected: str | None) -> None:
    f = tmp_path / "squid.conf"
    f.write_bytes(content)
    with pytest.raises(ProductConfigError) as err:
        parse_config(f, "squid")
    assert str(f) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert expected is None or expected in str(err.value)


def test_a_tinyproxy_file_without_port_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "tinyproxy.conf"
    f.write_text("Listen 127.0.0.1\nAllow 127.0.0.1\n")
    with pytest.raises(ProductConfigError, match="no `Port` line"):
        parse_config(f, "tinyproxy")


def test_missing_unreadable_and_directory_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProductConfigError, match="does not exist"):
        parse_config(tmp_path / "nope.conf", "squid")
    with pytest.raises(ProductConfigError, match="is a directory"):
        parse_config(tmp_path, "squid")
    if os.geteuid() != 0:  # root reads anything
        f = tmp_path / "secret.conf"
        f.write_text("http_port 3128\n")
        f.chmod(0)
        with pytest.raises(ProductConfigError, match="cannot read"):
            parse_config(f, "squid")


def test_several_ports_check_the_first_unless_told_and_say_which(tmp_path: Path) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 3129 intercept\nhttp_port 3128\nhttp_port 8080 ssl-bump tls-cert=/x.pem\n")
    model = parse_config(f, "squid")
    port, note = choose_port(model, None)
    assert port.port == 3128 and "the first of 3 listening ports" in note
    assert choose_port(model, 8080)[0].port == 8080
    with pytest.raises(ProductConfigError, match=r"--port 3129: .*3129 \(squid.conf line 1, not a forward proxy port\)"):
        choose_port(model, 3129)
