"""End to end: `proxy-lab proxy --upstream ... --record` (a real process) in front of a second lab
proxy standing in for the corporate proxy, then `proxy-lab observe` on what it recorded."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trustme

from proxy_lab.cli import main
from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, Client, echo_round_trip, lab_proxy, run, upstream

REPO = Path(__file__).resolve().parents[2]
SECRET = "S3cret-do-not-record"


@asynccontextmanager
async def lab_cli(*args: str) -> AsyncIterator[tuple[str, int, list[bytes]]]:
    """`proxy-lab proxy --listen 127.0.0.1:0 ARGS` in its own process: (host, port, its stderr lines)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy_lab.cli", "proxy", "--listen", "127.0.0.1:0", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[bytes] = []
    try:
        while True:
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert line, b"".join(lines)
            lines.append(line)
            if m := re.search(rb"listening on http://127\.0\.0\.1:(\d+)", line):
                break
        yield "127.0.0.1", int(m.group(1)), lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stderr.read(), 20)
        lines.append(rest)
        await asyncio.wait_for(proc.wait(), 20)


async def _client(host: str, port: int) -> Client:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT_S)
    return Client(reader, writer)


def _observe_json(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, dict]:
    code = main(["observe", *map(str, paths), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_chained_refusal_and_an_echo_tunnel_are_recorded_and_observed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "meter.jsonl"

    async def main_() -> int:
        # The corporate proxy's port rule, scoped to the guide's hosts so the echo server stays reachable.
        corp = ProxyConfig(faults=[make_fault("allow_ports", {"preset": "ssl_ports_only", "hosts": ["*.pb.com"]})])
        async with upstream() as echo, lab_proxy(corp, MapResolver({("distservp1.pb.com", None): echo.address})) as up:
            async with lab_cli("--upstream", f"http://{up.address[0]}:{up.address[1]}", "--record", str(record)) as (host, port, _):
                c = await _client(host, port)
                response = await c.connect("distservp1.pb.com:80")
                assert response.status == 403 and response.header("X-Squid-Error") == "ERR_ACCESS_DENIED 0"
                await c.close()
                c = await _client(host, port)
                assert (await c.connect(f"127.0.0.1:{echo.port}")).status == 200
                c.send(b"x" * 1000)
                assert await c.read_exactly(1000) == b"x" * 1000
                c.writer.write_eof()
                assert await c.read_to_eof() == b"[eof after 1000 bytes]"
                await c.close()
            return up.address[1]

    up_port = run(main_(), timeout_s=60)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(lines) == 2
    refused, tunnel = lines
    assert refused["service"] == "distributor" and refused["refused_by"] == "upstream"
    assert refused["upstream"]["status"] == 403 and refused["upstream"]["proxy"] == f"127.0.0.1:{up_port}"
    assert tunnel["catalog"] == "not in the guide" and tunnel["end"] == "client closed"
    assert (tunnel["bytes_up"], tunnel["bytes_down"]) == (1000, 1000 + len(b"[eof after 1000 bytes]"))

    code, report = _observe_json(capsys, record)
    assert code == 1  # a contact failed
    distributor = next(s for s in report["services"] if s["service"] == "distributor")
    assert distributor["outcome"] == "refused"
    assert distributor["contacts"][0]["refused_by"] == "upstream"
    finding = next(f for f in report["findings"] if "distributor" in f["services"])
    assert finding["cause"] == "allow_ports" and "upstream proxy" in finding["refuser"]
    assert "allow CONNECT to port 80" in finding["remedy"]
    assert [o["target"] for o in report["not_in_guide"]] == [f"127.0.0.1:{tunnel['target'].split(':')[1]}"]
    assert "http://distservp1.pb.com/csd/dstproduct" not in report["never_contacted"]
    assert "https://distservp1.pb.com/csd/dstproduct" in report["never_contacted"]


def test_basic_credentials_open_the_tunnel_their_absence_brings_the_upstreams_407_and_no_password_is_recorded_or_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_creds, without = tmp_path / "with.jsonl", tmp_path / "without.jsonl"
    logs: list[bytes] = []

    async def main_() -> None:
        corp = ProxyConfig(users={"meter": SECRET}, realm="corp")
        async with upstream() as echo, lab_proxy(corp, MapResolver({("funds.pb.test", None): echo.address})) as up:
            url = f"http://meter:{SECRET}@{up.address[0]}:{up.address[1]}"
            async with lab_cli("--upstream", url, "--record", str(with_creds)) as (host, port, lines):
                c = await _client(host, port)
                assert (await c.connect("funds.pb.test:443")).status == 200
                c.send(b"hello")
                assert await c.read_exactly(5) == b"hello"
                await c.close()
            logs.extend(lines)
            async with lab_cli("--upstream", f"http://{up.address[0]}:{up.address[1]}", "--record", str(without)) as (host, port, lines):
                c = await _client(host, port)
                response = await c.connect("funds.pb.test:443")
                assert response.status == 407 and response.header("Proxy-Authenticate") == 'Basic realm="corp"'
                await c.close()
            logs.extend(lines)

    run(main_(), timeout_s=60)
    ok = json.loads(with_creds.read_text())
    assert ok["lab"]["status"] == 200 and ok["upstream"]["status"] == 200 and ok["upstream"]["credentials"] is True
    denied = json.loads(without.read_text())
    assert denied["refused_by"] == "upstream" and denied["upstream"]["status"] == 407
    secrets = (SECRET, base64.b64encode(f"meter:{SECRET}".encode()).decode())
    everything = with_creds.read_text() + without.read_text() + b"".join(logs).decode(errors="replace")
    assert "chained to http://meter:***@" in everything  # the log names the upstream (negative control: logs were read)
    for secret in secrets:
        assert secret not in everything
    code, report = _observe_json(capsys, without)
    assert code == 1
    assert report["findings"][0]["outcome"] == "auth_required"


def test_a_tls12_handshake_inside_a_chained_tunnel_is_recorded_with_its_sni_and_issuer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = tmp_path / "tls.jsonl"
    ca = trustme.CA(organization_name="Corp Inspection Test CA")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("cometservp1.pb.com").configure_cert(server_ctx)
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def tls_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await asyncio.wait_for(reader.read(100), TIMEOUT_S)
        writer.write(data)
        await writer.drain()
        writer.close()

    async def main_() -> None:
        server = await asyncio.start_server(tls_echo, "127.0.0.1", 0, ssl=server_ctx)
        address = server.sockets[0].getsockname()[:2]
        try:
            async with lab_proxy(None, MapResolver({("cometservp1.pb.com", None): address})) as up:
                async with lab_cli("--upstream", f"http://{up.address[0]}:{up.address[1]}", "--record", str(record)) as (host, port, _):
                    c = await _client(host, port)
                    assert (await c.connect("cometservp1.pb.com:443")).status == 200
                    await c.writer.start_tls(client_ctx, server_hostname="cometservp1.pb.com")
                    c.writer.write(b"refill")
                    assert await asyncio.wait_for(c.reader.read(100), TIMEOUT_S) == b"refill"
                    await c.close()
        finally:
            server.close()

    run(main_(), timeout_s=60)
    line = json.loads(record.read_text())
    assert line["service"] == "funds" and line["sni"] == "cometservp1.pb.com" and line["tls_version"] == "TLS 1.2"
    assert "Corp Inspection Test CA" in line["issuer"]
    code, report = _observe_json(capsys, record)
    assert code == 1
    funds = next(s for s in report["services"] if s["service"] == "funds")
    assert funds["outcome"] == "tls_intercepted"
    # Negative control: the same record with the issuer named as expected is a pass.
    assert main(["observe", str(record), "--format", "json", "--expected-issuer", "Corp Inspection Test CA"]) == 0


def test_without_record_the_chained_proxy_runs_with_several_workers_and_carries_two_mebibytes_both_ways() -> None:
    async def main_() -> None:
        async with upstream() as echo, lab_proxy(None, MapResolver({("bulk.test", None): echo.address})) as up:
            async with lab_cli("--upstream", f"http://{up.address[0]}:{up.address[1]}", "--workers", "2") as (host, port, _):
                payload = bytes(range(256)) * 8192  # 2 MiB: past the splice threshold
                c = await _client(host, port)
                assert (await c.connect("bulk.test:443")).status == 200
                await echo_round_trip(c, payload)
                await c.close()

    run(main_(), timeout_s=60)
