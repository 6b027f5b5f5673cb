"""`proxy-lab check --product`: the user's own squid.conf / tinyproxy.conf, run by the real product in a lab
namespace with the meter's traffic from its own address; the fix is offered only once it passes.

Every check here starts real Squid (squid-openssl) or tinyproxy as root; bad input is refused before
anything starts (those tests need neither root nor a product).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from proxy_lab.check.product import DEFAULT_METER_IP
from proxy_lab.cli import main
from proxy_lab.netns import list_namespaces
from proxy_lab.productconf import find_product
from proxy_lab.productconf.diff import changed_line_count
from proxy_lab.targets.htpasswd import apr1_line

STOCK_SQUID = Path("/etc/squid/squid.conf")
STOCK_TINYPROXY = Path("/etc/tinyproxy/tinyproxy.conf")
DATA = Path(__file__).resolve().parents[1] / "productconf" / "data"
SCHEMAS = (
    resources.files("proxy_lab").joinpath("data/junit.xsd"),
    Path(__file__).resolve().parents[1] / "report" / "windyroad-junit.xsd",
)
METER = "10.20.30.40"


def need(product: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the product runs in a network namespace (ip netns)")
    if find_product(product) is None:  # type: ignore[arg-type]
        pytest.skip(f"{product} is not installed")


def stock(product: str) -> Path:
    """Debian's own file: the installed one, or the copy kept with the tests."""
    installed = STOCK_SQUID if product == "squid" else STOCK_TINYPROXY
    return installed if installed.exists() else DATA / f"debian-{product}.conf"


@pytest.fixture
def workdir() -> Any:
    """A directory the product's own account can read (pytest's tmp_path is root's, mode 0700)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="proxy-lab-product-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], certs: Path) -> Cli:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--certs", str(certs), "check", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def squid_allowing(meter: str, path: Path, *, extra: str = "") -> Path:
    """Debian's squid.conf plus an `http_access allow` for the meter's address (and `extra` lines before it)."""
    text = stock("squid").read_text()
    rule = f"{extra}acl meter src {meter}\nhttp_access allow meter\nhttp_access allow localhost\n"
    assert "\nhttp_access allow localhost\n" in text
    path.write_text(text.replace("\nhttp_access allow localhost\n", "\n" + rule, 1))
    return path


def no_leftovers() -> None:
    mine = [n for n in list_namespaces() if n.startswith(f"proxylab-{os.getpid()}-")]
    assert mine == [], f"namespaces left behind: {mine}"


# -- the Done-when list, against the real products --------------------------------------------------
@pytest.mark.slow
@pytest.mark.root
def test_stock_squid_allowing_the_meter_fails_on_the_port_rule_and_the_fix_written_passes(cli: Cli, workdir: Path) -> None:
    need("squid")
    config = squid_allowing(METER, workdir / "squid.conf")
    before = hashlib.sha256(config.read_bytes()).hexdigest()
    fixed = workdir / "fixed" / "squid.conf"
    fixed.parent.mkdir()
    code, out, err = cli("--product", "squid", "--config", str(config), "--meter-ip", METER, "--fix-out", str(fixed))
    assert code == 1, err
    assert "[allow_ports] refused by `http_access deny CONNECT !SSL_ports`" in out
    assert "the meter uses port 3128: `http_port 3128`" in out
    assert f"fix written to {fixed}; checked the same way: the meter will work" in out
    assert hashlib.sha256(config.read_bytes()).hexdigest() == before  # the user's file is never written
    fix_diff = "".join(difflib.unified_diff(config.read_text().splitlines(True), fixed.read_text().splitlines(True)))
    assert 0 < changed_line_count(fix_diff) < 10
    assert "    +acl SSL_ports port 80 5228 5938" in out  # the report shows the fix as a diff
    assert re.search(r"^acl SSL_ports port 80 5228 5938$", fixed.read_text(), re.M)
    # the fixed file passes on its own: exit 0
    code, out, err = cli("--product", "squid", "--config", str(fixed), "--meter-ip", METER)
    assert code == 0, out + err
    assert "verdict: the meter will work" in out
    no_leftovers()


@pytest.mark.slow
@pytest.mark.root
def test_stock_tinyproxy_names_its_allow_rule_for_a_lan_meter_and_the_fix_passes(cli: Cli, workdir: Path) -> None:
    need("tinyproxy")
    fixed = workdir / "tinyproxy.conf"
    code, out, err = cli("--product", "tinyproxy", "--config", str(stock("tinyproxy")), "--meter-ip", "192.168.1.50",
                         "--fix-out", str(fixed))  # fmt: skip
    assert code == 1, err
    assert re.search(r"refused by Allow lines `Allow 127\.0\.0\.1` \(line \d+\), `Allow ::1` \(line \d+\) in tinyproxy\.conf: none lists 192\.168\.1\.50", out)
    assert "403 Access denied" in out
    assert f"fix written to {fixed}; checked the same way: the meter will work" in out
    assert "+Allow 192.168.1.50" in out
    no_leftovers()


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize(
    ("product", "text"),
    [
        ("squid", "acl meter src fd12:3456::40\nacl SSL_ports port 443 80 5228 5938\nacl CONNECT method CONNECT\n"
                  "http_access deny CONNECT !SSL_ports\nhttp_access allow meter\nhttp_access deny all\nhttp_port 3128\n"),
        ("tinyproxy", "Port 8888\nListen 0.0.0.0\nTimeout 600\nAllow fd12:3456::40\n"
                      "ConnectPort 443\nConnectPort 80\nConnectPort 5228\nConnectPort 5938\n"),
    ],
)
def test_a_meter_on_ipv6_is_let_through_by_its_ipv6_rule_and_another_ipv6_address_is_not(
    cli: Cli, workdir: Path, product: str, text: str
) -> None:
    need(product)
    config = workdir / f"{product}.conf"
    config.write_text(text)
    code, out, err = cli("--product", product, "--config", str(config), "--meter-ip", "fd12:3456::40")
    assert code == 0, out + err
    assert "the meter at fd12:3456::40" in out and "at [2001:2::1]:" in out
    code, out, err = cli("--product", product, "--config", str(config), "--meter-ip", "fd12:3456::41")
    assert code == 1, out + err
    assert "distributor" in out and "refused" in out and "fd12:3456::41" in out
    no_leftovers()


@pytest.mark.slow
@pytest.mark.root
def test_the_same_file_passes_a_meter_its_src_rule_exempts_and_fails_another_lan_address(cli: Cli, workdir: Path) -> None:
    need("squid")
    config = squid_allowing(METER, workdir / "squid.conf", extra="acl SSL_ports port 80 5228 5938\n")
    code, out, err = cli("--product", "squid", "--config", str(config), "--meter-ip", METER, "--format", "junit")
    assert code == 0, out + err
    for schema in SCHEMAS:
        xmlschema.XMLSchema(str(schema)).validate(out)
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"
    names = [c.get("name") for c in suite.iter("testcase")]
    assert "distributor (required)" in names and "remote_access (recommended)" in names
    # negative control: another address of the same LAN is caught by `http_access deny all`
    code, out, err = cli("--product", "squid", "--config", str(config), "--meter-ip", "10.20.30.41", "--format", "junit")
    assert code == 1, err
    for schema in SCHEMAS:
        xmlschema.XMLSchema(str(schema)).validate(out)
    suite = ET.fromstring(out).find("testsuite")
    assert suite is not None
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "distributor (required)" in failed
    assert any(name.startswith("finding: ") for name in failed)
    assert "`http_access deny all`" in out
    no_leftovers()


@pytest.mark.slow
@pytest.mark.root
def test_a_basic_auth_file_passes_with_the_meters_user_and_asks_for_auth_without(cli: Cli, workdir: Path) -> None:
    need("squid")
    passwords = workdir / "passwd"
    passwords.write_text(apr1_line("meter", "s3cret") + "\n")
    passwords.chmod(0o644)
    helper = "/usr/lib/squid/basic_ncsa_auth"
    if not Path(helper).exists():
        pytest.skip(f"{helper} is not installed")
    config = workdir / "squid.conf"
    config.write_text(
        f"auth_param basic program {helper} {passwords}\nauth_param basic realm office\n"
        "acl staff proxy_auth REQUIRED\nacl SSL_ports port 443 80 5228 5938\nacl CONNECT method CONNECT\n"
        "http_access deny CONNECT !SSL_ports\nhttp_access allow staff\nhttp_access deny all\nhttp_port 3128\n"
    )
    code, out, err = cli("--product", "squid", "--config", str(config), "--user", "meter:s3cret", "--format", "json")
    assert code == 0, out + err
    code, out, err = cli("--product", "squid", "--config", str(config), "--format", "json")
    assert code == 1, err
    import json

    report = json.loads(out)
    assert {s["outcome"] for s in report["services"].values()} == {"auth_required"}
    assert report["product"]["meter_ip"] == DEFAULT_METER_IP
    no_leftovers()


@pytest.mark.slow
@pytest.mark.root
def test_the_pytest_fixture_checks_a_config_and_its_negative_control_fails(proxy_lab_check: Callable[..., Any], workdir: Path) -> None:
    need("tinyproxy")
    good = workdir / "good.conf"
    good.write_text(f"Port 8888\nAllow {METER}\n")
    bad = workdir / "bad.conf"
    bad.write_text(f"Port 8888\nAllow {METER}\nConnectPort 443\n")
    assert proxy_lab_check("tinyproxy", good, meter_ip=METER).exit_code == 0
    result = proxy_lab_check("tinyproxy", bad, meter_ip=METER)
    assert result.exit_code == 1
    assert "`ConnectPort 443` (bad.conf line 3)" in result.refused_by.values()


@pytest.mark.slow
@pytest.mark.root
@pytest.mark.parametrize(("sig", "codes"), [(signal.SIGINT, (1, 130)), (signal.SIGTERM, (143,))])  # Ctrl-C; a CI job cancelled
def test_a_check_interrupted_midway_leaves_no_namespace_and_no_product_running(
    workdir: Path, certs: Path, sig: signal.Signals, codes: tuple[int, ...]
) -> None:
    need("squid")
    config = squid_allowing(METER, workdir / "squid.conf")
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy_lab.cli", "--certs", str(certs), "check", "--product", "squid", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    prefix = f"proxylab-{proc.pid}-"
    deadline = time.monotonic() + 120
    while not any(n.startswith(prefix) for n in list_namespaces()):  # bounded by the deadline
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the check never created its namespace"
        time.sleep(0.1)
    time.sleep(2.0)  # the product and the probes get going
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode in codes
    assert not [n for n in list_namespaces() if n.startswith(prefix)]
    assert not Path("/etc/netns").exists() or not [p for p in Path("/etc/netns").iterdir() if p.name.startswith(prefix)]
    running = subprocess.run(["pgrep", "-f", str(config)], capture_output=True, text=True, check=False).stdout.split()
    assert running == []


# -- bad input: one line, exit 2, before anything starts ------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--product", "squid", "--config", str(DATA / "debian-tinyproxy.conf")], r"tinyproxy"),  # the other product's file
        (["--product", "squid", "--config", "/nonexistent/squid.conf"], r"/nonexistent/squid\.conf"),  # unreadable
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--meter-ip", "meter.local"], r"--meter-ip 'meter.local': not an IP address"),
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--meter-ip", "192.168.10.250"], r"--meter-ip 192\.168\.10\.250: inside the meter's internal subnet"),
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--meter-ip", "192.168.10.100"], r"internal subnet"),
        (["--product", "squid"], r"give --config FILE"),
        (["--config", str(DATA / "debian-squid.conf")], r"go with --product"),
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--user", "nocolon"], r"--user 'nocolon': expected NAME:PASSWORD"),
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--proxy", "http://127.0.0.1:3128"], r"--proxy does not apply"),
        (["--product", "squid", "--config", str(DATA / "debian-squid.conf"), "--port", "8080"], r"8080"),  # a port the file does not open
    ],
)
def test_bad_input_is_one_line_naming_what_was_wrong_and_exit_2(cli: Cli, argv: list[str], expected: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(expected, err), err


def test_a_file_listening_only_on_a_unix_socket_is_refused_with_its_line(cli: Cli, workdir: Path) -> None:
    unix = workdir / "only-unix.conf"
    unix.write_text("Listen /run/tinyproxy.sock\n")
    code, _, err = cli("--product", "tinyproxy", "--config", str(unix))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "only-unix.conf" in err, err


def test_fix_out_may_not_be_the_users_own_file(cli: Cli, workdir: Path) -> None:
    config = workdir / "squid.conf"
    config.write_text(stock("squid").read_text())
    code, _, err = cli("--product", "squid", "--config", str(config), "--fix-out", str(config))
    assert code == 2 and "is --config itself" in err
    assert config.read_text() == stock("squid").read_text()


def test_a_squid_without_openssl_refuses_an_sslbump_file_with_its_line(cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A squid built without OpenSSL is one whose `squid -v` lacks --with-openssl: here a script that says so."""
    fake = workdir / "squid"
    fake.write_text("#!/bin/sh\necho 'Squid Cache: Version 5.7'\necho \"configure options:  '--prefix=/usr'\"\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PROXY_LAB_SQUID_BIN", str(fake))
    config = workdir / "squid.conf"
    config.write_text("http_port 3128 ssl-bump cert=/etc/ssl/certs/ssl-cert-snakeoil.pem\nssl_bump bump all\nhttp_access allow all\n")
    code, _, err = cli("--product", "squid", "--config", str(config))
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "squid.conf" in err and "OpenSSL" in err and "squid-openssl" in err, err
