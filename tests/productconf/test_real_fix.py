"""Real Squid and tinyproxy on loopback prove the fix: the meter's CONNECT is refused before and let through after.

The meter is a loopback source address other than 127.0.0.1 (which Debian's files allow), the CONNECT
target a loopback echo server by its IP literal: no name is ever resolved.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from proxy_lab.catalog import parse_catalog
from proxy_lab.productconf import LabFacts, Problem, for_lab, parse_config, propose_fix, started
from proxy_lab.productconf.validation import supports_ssl_bump
from tests.productconf.productconf_helpers import (
    METER,
    STOCK_SQUID,
    STOCK_TINYPROXY,
    connect_via,
    free_port,
    require,
)
from tests.sockkit import serving

pytestmark = pytest.mark.slow


def check(path: Path, product: str, facts: LabFacts, target: str, src: str = METER) -> str:
    """Start the product with `path` rewritten for loopback; CONNECT once; the status line (and echo when 200)."""
    exe = require(product)
    lab = for_lab(parse_config(path, product), replace(facts, workdir=facts.workdir.parent / f"lab-{free_port()}", bind_port=free_port()))
    with started(lab, exe):
        status, tunnel = connect_via(lab.listen, target, src=src)
        if tunnel is not None:
            with tunnel:
                tunnel.sendall(b"meter")
                assert tunnel.recv(5) == b"meter"
    return status


def write_fix(labdir: Path, product: str, path: Path, problems: list[Problem], **kw: object) -> Path:
    fix = propose_fix(parse_config(path, product), problems, meter_ip=METER, fix_dir=labdir, **kw)  # type: ignore[arg-type]
    assert fix.changed and not fix.unfixed, fix.unfixed
    for p, text in fix.files.items():
        p.write_text(text)
    out = labdir / f"fixed-{path.name}"
    out.write_text(fix.text)
    return out


def test_stock_squid_allowing_the_meter_refuses_its_port_then_the_fix_lets_it_through(labdir: Path, facts: LabFacts, echo_server: int) -> None:
    path = labdir / "squid.conf"
    path.write_text(STOCK_SQUID.read_text().replace(
        "http_access allow localhost\n", f"acl meter src {METER}\nhttp_access allow meter\nhttp_access allow localhost\n", 1))  # fmt: skip
    target = f"127.0.0.1:{echo_server}"
    assert check(path, "squid", facts, target).startswith("HTTP/1.1 403")
    fixed = write_fix(labdir, "squid", path, [Problem("allow_ports", (f"tcp://{target}/",))])
    assert check(fixed, "squid", facts, target).startswith("HTTP/1.1 200")
    # the same file, another address of the LAN: the meter's own rule does not cover it
    assert check(fixed, "squid", facts, target, src="127.20.30.41").startswith("HTTP/1.1 403")


def test_stock_tinyproxy_refuses_a_lan_meter_then_the_allow_fix_lets_it_through(labdir: Path, facts: LabFacts, echo_server: int) -> None:
    target = f"127.0.0.1:{echo_server}"
    assert check(STOCK_TINYPROXY, "tinyproxy", facts, target) == "HTTP/1.0 403 Access denied"
    assert check(STOCK_TINYPROXY, "tinyproxy", facts, target, src="127.0.0.1").startswith("HTTP/1.0 200")  # negative control
    fixed = write_fix(labdir, "tinyproxy", STOCK_TINYPROXY, [Problem("refused", (f"tcp://{target}/",))])
    assert check(fixed, "tinyproxy", facts, target).startswith("HTTP/1.0 200")


def test_tinyproxy_connectport_refuses_then_the_connectport_fix_lets_it_through(labdir: Path, facts: LabFacts, echo_server: int) -> None:
    path = labdir / "tinyproxy.conf"
    path.write_text(f"Port 8888\nAllow {METER}\nConnectPort 443\n")
    target = f"127.0.0.1:{echo_server}"
    assert check(path, "tinyproxy", facts, target) == "HTTP/1.1 403 Access violation"
    fixed = write_fix(labdir, "tinyproxy", path, [Problem("allow_ports", (f"tcp://{target}/",))])
    assert check(fixed, "tinyproxy", facts, target).startswith("HTTP/1.0 200")


def test_tinyproxy_allow_list_filter_refuses_then_the_new_filter_file_lets_the_exact_host_through(
    labdir: Path, facts: LabFacts, echo_server: int
) -> None:
    # `localhost` stands for a guide host here: the only name the machine's resolver may be asked
    catalog = parse_catalog(tomllib.loads(f'proxy_ports = [{echo_server}]\n[services.x]\nlevel = "required"\nendpoints = [{{ url = "tcp://localhost:{echo_server}/", exchange = "get" }}]\n'))
    (labdir / "filter").write_text("^intranet\\.corp$\n")
    path = labdir / "tinyproxy.conf"
    path.write_text(f'Port 8888\nAllow {METER}\nFilter "{labdir}/filter"\nFilterDefaultDeny Yes\nFilterType ere\n')
    target = f"localhost:{echo_server}"
    assert check(path, "tinyproxy", facts, target) == "HTTP/1.1 403 Filtered"
    fixed = write_fix(labdir, "tinyproxy", path, [Problem("allow_hosts", (f"tcp://{target}/",))], catalog=catalog)
    assert check(fixed, "tinyproxy", facts, target).startswith("HTTP/1.0 200")
    assert (labdir / "filter").read_text() == "^intranet\\.corp$\n"  # the user's file is untouched


def test_squid_bumping_tls_splices_the_meter_after_the_fix(labdir: Path, facts: LabFacts) -> None:
    """Before: the meter is shown a certificate of the user's inspection CA; after: the server's own,
    signed by the lab PB root (which the rewrite made Squid trust upstream)."""
    exe = require("squid")
    if not supports_ssl_bump(exe):
        pytest.skip("needs a squid built with OpenSSL (squid-openssl)")
    pb, corp = trustme.CA(organization_name="PB root"), trustme.CA(organization_name="Corp inspection")
    (labdir / "pb-root.pem").write_bytes(pb.cert_pem.bytes())
    (labdir / "corp-ca.pem").write_bytes(corp.private_key_pem.bytes() + corp.cert_pem.bytes())
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pb.issue_cert("127.0.0.1").configure_cert(server_ctx)

    def tls_echo(conn: socket.socket) -> None:
        with contextlib.suppress(ssl.SSLError), server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(tls.recv(16))

    path = labdir / "squid.conf"
    path.write_text(
        f"http_port 3128 ssl-bump tls-cert={labdir}/corp-ca.pem generate-host-certificates=on\n"
        "acl SSL_ports port 443 1-65535\nacl step1 at_step SslBump1\nssl_bump peek step1\nssl_bump bump all\n"
        "http_access allow all\n"
    )
    tfacts = replace(facts, pb_root=labdir / "pb-root.pem")

    def issuer(conf: Path) -> str:
        lab = for_lab(parse_config(conf, "squid"), replace(tfacts, workdir=labdir / f"lab-{free_port()}", bind_port=free_port()))
        with started(lab, exe):
            status, tunnel = connect_via(lab.listen, f"127.0.0.1:{tls_port}")
            assert tunnel is not None, status
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            with ctx.wrap_socket(tunnel, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)  # (a bumped tunnel carries HTTP only: no echo here)
        assert der is not None
        return x509.load_der_x509_certificate(der).issuer.rfc4514_string()

    with serving(tls_echo) as tls_port:
        assert "Corp inspection" in issuer(path)
        fixed = write_fix(labdir, "squid", path, [Problem("tls_inspect", ("https://decometlb20.pb.com/",))])
        assert "PB root" in issuer(fixed)
