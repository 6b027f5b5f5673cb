"""`proxy-lab export`: every format carries the guide's endpoints exactly, and real proxies take them.

The Squid snippet is included into a copy of Debian's squid.conf and parsed by the real `squid -k
parse`; the tinyproxy settings and filter are run by a real tinyproxy on loopback, which must
accept and refuse CONNECTs by port and by host as exported (IP-literal targets only: no name is
ever looked up).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.errors import ConfigError
from proxy_lab.export import CSV_COLUMNS, FORMATS, add_parser, allowed_hosts, records, render
from tests.sockkit import send_connect, serving

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "docs" / "export-schema.json"
DEBIAN_SQUID_CONF = Path("/etc/squid/squid.conf")
IO_TIMEOUT_S = 10.0


def schema() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(SCHEMA.read_text("utf-8"))
    return loaded


@pytest.mark.parametrize("model", ["sendpro-c", "sendpro-plus"])
def test_the_json_export_has_one_record_per_endpoint_and_validates_against_the_schema(model: str) -> None:
    import jsonschema

    cat = load_catalog()
    doc = json.loads(render(cat, model, "json"))
    jsonschema.validate(doc, schema())
    endpoints = [r for r in doc if r["kind"] == "endpoint"]
    assert [r["endpoint"] for r in endpoints] == [e.id for e in cat.endpoints(model)]
    assert [r["id"] for r in doc] == list(range(1, len(doc) + 1))
    assert [r["urls"][0] for r in doc if r["kind"] == "pattern"] == ["*.TeamViewer.com", "*.dyngate.com"]
    assert ("parcel_shipping" in {r["serviceArea"] for r in doc}) == (model == "sendpro-plus")


def test_a_json_record_says_its_section_level_ports_and_assumptions() -> None:
    doc = {r["endpoint"]: r for r in json.loads(render(load_catalog(), "sendpro-c", "json"))}
    dist = doc["distributor/http://distservp1.pb.com:80/csd/dstproduct"]
    assert (dist["section"], dist["required"], dist["tcpPorts"], dist["transport"]) == ("Required URLs", True, "80", "http")
    assert "assumptions" not in dist
    dns = doc["connectivity_check/dns+udp://8.8.8.8:53/connectivitycheck.gstatic.com"]
    assert (dns["udpPorts"], dns["viaProxy"]) == ("53", False) and "tcpPorts" not in dns
    lh3 = doc["device_management/https://lh3.googleusercontent.com:443/"]
    assert lh3["guideHost"] == "Ih3.googleusercontent.com"
    assert [a["id"] for a in lh3["assumptions"]] == ["dm_both_ports", "ih3_is_lh3"]
    assert doc["remote_access/tcp://master3.teamviewer.com:5938/"]["way"] == "port_5938"


def test_a_record_that_breaks_the_format_fails_the_schema() -> None:
    import jsonschema

    doc = json.loads(render(load_catalog(), "sendpro-c", "json"))
    doc[0]["port"] = "443"  # a string where scripts expect a number
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())


def test_the_csv_export_has_the_same_records_one_a_line() -> None:
    cat = load_catalog()
    rows = list(csv.DictReader(io.StringIO(render(cat, "sendpro-plus", "csv"))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == len(records(cat, "sendpro-plus"))
    funds = [r for r in rows if r["serviceArea"] == "funds"]
    assert {r["assumptions"] for r in funds} == {"funds_messages"} and {r["required"] for r in funds} == {"true"}
    assert rows[-1]["kind"] == "pattern" and rows[-1]["host"] == "*.dyngate.com" and rows[-1]["port"] == ""


def test_no_format_writes_a_wildcard_the_guide_does_not_write() -> None:
    guide_patterns = {"*.teamviewer.com", ".teamviewer.com", "*.dyngate.com", ".dyngate.com"}
    for fmt in ("hosts", "squid"):
        text = render(load_catalog(), "sendpro-plus", fmt)
        words = {w.lower() for line in text.splitlines() if not line.startswith("#") for w in line.split()}
        wild = {w for w in words if w.startswith(("*", "."))}
        assert wild == ({"*.teamviewer.com", "*.dyngate.com"} if fmt == "hosts" else {".teamviewer.com", ".dyngate.com"})
        assert wild <= guide_patterns
    filt = render(load_catalog(), "sendpro-plus", "tinyproxy-filter")
    open_ended = [line for line in filt.splitlines() if line.startswith("^.+")]
    assert open_ended == [r"^.+\.teamviewer\.com$", r"^.+\.dyngate\.com$"]


def test_the_host_list_covers_every_tunnelled_host_exactly_once() -> None:
    cat = load_catalog()
    listed = render(cat, "sendpro-c", "hosts").splitlines()
    assert len(listed) == len(set(listed)) and "8.8.8.8" not in listed
    for e in cat.endpoints("sendpro-c"):
        if e.via_proxy:
            assert e.host in listed or any(e.host.endswith(p[1:]) for p in listed if p.startswith("*.")), e.host
    assert "foundation.sending.us.pitneybowes.com" not in listed  # parcel shipping: SendPro+ only
    assert "foundation.sending.us.pitneybowes.com" in render(cat, "sendpro-plus", "hosts").splitlines()


def test_the_proxy_formats_name_the_guides_ports_5228_included() -> None:
    cat = load_catalog()
    tiny = render(cat, "sendpro-c", "tinyproxy").splitlines()
    assert [line for line in tiny if line.startswith("ConnectPort")] == [f"ConnectPort {p}" for p in (80, 443, 5228, 5938)]
    squid = render(cat, "sendpro-c", "squid").splitlines()
    assert [line for line in squid if line.startswith("acl SSL_ports")] == [
        "acl SSL_ports port 80", "acl SSL_ports port 5228", "acl SSL_ports port 5938",
    ]  # fmt: skip
    assert "acl sendpro_ports port 80 443 5228 5938" in squid


# -- Squid ----------------------------------------------------------------------------------------
def squid_parse(snippet: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Debian's squid.conf, its conf.d include pointed at `snippet`, through `squid -k parse`."""
    (tmp_path / "sendpro.conf").write_text(snippet, encoding="utf-8")
    debian = DEBIAN_SQUID_CONF.read_text("utf-8")
    assert "include /etc/squid/conf.d/*.conf" in debian
    conf = debian.replace("include /etc/squid/conf.d/*.conf", f"include {tmp_path / 'sendpro.conf'}")
    (tmp_path / "squid.conf").write_text(conf, encoding="utf-8")
    squid = shutil.which("squid") or "/usr/sbin/squid"
    return subprocess.run(
        [squid, "-k", "parse", "-f", str(tmp_path / "squid.conf")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


needs_squid = pytest.mark.skipif(
    not (shutil.which("squid") or Path("/usr/sbin/squid").exists()) or not DEBIAN_SQUID_CONF.exists(),
    reason="needs Debian's squid (apt-get install squid-openssl)",
)


@needs_squid
@pytest.mark.parametrize(("model", "meter_ip"), [("sendpro-c", None), ("sendpro-plus", "192.0.2.10")])
def test_the_squid_snippet_included_in_debians_squid_conf_parses(model: str, meter_ip: str | None, tmp_path: Path) -> None:
    snippet = render(load_catalog(), model, "squid", meter_ip=meter_ip)
    done = squid_parse(snippet, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Processing: include {tmp_path / 'sendpro.conf'}" in done.stderr  # the snippet was read
    assert "ssl_bump splice" in done.stderr and "WARNING" not in done.stderr.upper().replace("ERROR-LOGS", "")


@needs_squid
def test_a_broken_squid_snippet_fails_the_same_parse(tmp_path: Path) -> None:
    snippet = render(load_catalog(), "sendpro-c", "squid").replace(" ssl::server_name ", " ssl::server_nam ", 1)
    assert squid_parse(snippet, tmp_path).returncode != 0


# -- tinyproxy ------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def echo_server(host: str, port: int) -> Iterator[None]:
    """Answers `echo:` + the first bytes it reads, on each connection, until the block ends."""
    with serving(lambda conn: conn.sendall(b"echo:" + conn.recv(64)), host, port):
        yield


def connect(proxy_port: int, target: str) -> tuple[str, bytes]:
    """CONNECT `target` through the proxy: (status line, what the tunnel echoes back or b"")."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=IO_TIMEOUT_S) as s:
        status = send_connect(s, target)
        if " 200 " not in status:
            return status, b""
        s.sendall(b"meter")
        return status, s.recv(64)


@contextlib.contextmanager
def tinyproxy(conf: str, tmp_path: Path) -> Iterator[int]:
    exe = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
    for _ in range(3):  # the free port may be taken between probing it and tinyproxy binding it
        port = free_port()
        path = tmp_path / "tinyproxy.conf"
        path.write_text(f"Port {port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n{conf}", encoding="utf-8")
        proc = subprocess.Popen([exe, "-d", "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
                time.sleep(0.1)
            else:
                continue
            if proc.poll() is None:
                yield port
                return
        finally:
            proc.terminate()
            try:
                proc.wait(IO_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(IO_TIMEOUT_S)
    pytest.fail("tinyproxy did not start listening on loopback in 3 tries")


@pytest.mark.skipif(not (shutil.which("tinyproxy") or Path("/usr/bin/tinyproxy").exists()), reason="needs tinyproxy")
def test_a_real_tinyproxy_with_the_export_allows_exactly_the_guides_ports_and_hosts(tmp_path: Path) -> None:
    cat = load_catalog()
    filter_path = tmp_path / "sendpro-filter"
    conf = render(cat, "sendpro-c", "tinyproxy", filter_path=str(filter_path))
    assert f'Filter "{filter_path}"' in conf
    upstream = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    other = upstream.rsplit(".", 1)[0] + "." + str(int(upstream.rsplit(".", 1)[1]) % 254 + 1)
    # The exported filter, plus the lab's upstream address: the guide's hosts would need a lookup.
    filter_path.write_text(render(cat, "sendpro-c", "tinyproxy-filter") + f"^{upstream.replace('.', chr(92) + '.')}$\n")
    with echo_server(upstream, 5938), echo_server(upstream, 5228), tinyproxy(conf, tmp_path) as port:
        for allowed in (5938, 5228):
            status, echoed = connect(port, f"{upstream}:{allowed}")
            assert " 200 " in status and echoed == b"echo:meter", (allowed, status)
        status, _ = connect(port, f"{upstream}:5939")  # a port the guide does not name
        assert status.endswith("403 Access violation"), status
        status, _ = connect(port, f"{other}:5938")  # a host the filter does not list
        assert status.endswith("403 Filtered"), status


# -- the command --------------------------------------------------------------------------------
def export(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="proxy-lab")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *argv])
    code: int = args.handler(args)
    return code


def test_the_command_writes_each_format_to_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt in FORMATS:
        out = tmp_path / f"export.{fmt}"
        assert export("--model", "sendpro-c", "--format", fmt, "-o", str(out)) == 0
        assert out.read_text("utf-8") == render(load_catalog(), "sendpro-c", fmt)
    assert f"wrote {tmp_path / 'export.hosts'} (hosts, sendpro-c)" in capsys.readouterr().err
    assert export("--format", "hosts") == 0  # default model sendpro-plus, to stdout
    assert "foundation.sending.us.pitneybowes.com" in capsys.readouterr().out


def test_bad_input_is_one_line_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"^--output '.*nowhere/x': cannot write"):
        export("--format", "json", "-o", str(tmp_path / "nowhere" / "x"))
    with pytest.raises(ConfigError, match=r"^--meter-ip applies to --format squid only$"):
        export("--format", "hosts", "--meter-ip", "10.0.0.5")
    with pytest.raises(SystemExit) as exc:
        export("--format", "pac")
    assert exc.value.code == 2 and "invalid choice: 'pac'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        export("--format", "squid", "--meter-ip", "not-an-ip")
    assert exc.value.code == 2 and "--meter-ip 'not-an-ip': expected an IP address" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"--model 'sendpro-x'"):
        render(load_catalog(), "sendpro-x", "json")


def test_allowed_hosts_leave_out_ip_literals_and_hosts_under_the_guides_wildcards() -> None:
    hosts, patterns = allowed_hosts(load_catalog(), "sendpro-c")
    assert patterns == ["*.teamviewer.com", "*.dyngate.com"]
    assert "8.8.8.8" not in hosts and not any(h.endswith((".teamviewer.com", ".dyngate.com")) for h in hosts)
    assert "lh3.googleusercontent.com" in hosts and "ih3.googleusercontent.com" not in hosts
