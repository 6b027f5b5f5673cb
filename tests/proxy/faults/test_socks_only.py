"""socks_only: the lab proxy's listener is a SOCKS5 server and nothing else.

An HTTP client (the meter speaks only HTTP CONNECT) gets `05 FF` and a close: not an HTTP answer.
Negative controls: real SOCKS5 clients (python-socks with remote DNS, `curl --socks5-hostname`)
reach cloud hosts that only the lab's Resolver knows, so the name was resolved by the proxy.
The handshake logic (auth, unsupported commands, refusals) is also driven socket-free.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from python_socks import ProxyError
from python_socks.async_.asyncio import Proxy

from proxy_lab.cloud import Cloud
from proxy_lab.device import Device, DeviceSettings, ProxySettings
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome, Result
from proxy_lab.pki import PKI
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.proxy.auth import AuthResult, BasicAuth
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults import AnswerFn, Ctx
from proxy_lab.proxy.faults.socks_only import reply_for
from proxy_lab.proxy.responses import lab_error, squid_connect_fail, squid_dns_fail
from proxy_lab.proxy.socks import Command, Method, Reply, greeting_bytes, reply, request_bytes, userpass_bytes
from tests.proxy.proxy_testkit import run

TIMEOUT_S = 5.0
GENERATE_204 = b"GET /generate_204 HTTP/1.1\r\nHost: connectivitycheck.gstatic.com\r\nConnection: close\r\n\r\n"


@asynccontextmanager
async def socks_lab(pki: PKI) -> AsyncIterator[LabProxy]:
    cloud = Cloud(pki)
    await cloud.start()
    try:
        async with LabProxy(ProxyConfig(faults=[make_fault("socks_only")]), cloud.resolver) as proxy:
            yield proxy
    finally:
        await cloud.stop()


# -- on the wire ----------------------------------------------------------------------------------
def test_an_http_connect_client_gets_05_ff_then_a_close_not_an_http_answer(pki: PKI) -> None:
    async def scenario() -> bytes:
        async with socks_lab(pki) as proxy:
            reader, writer = await asyncio.open_connection(*proxy.address)
            writer.write(b"CONNECT pb-ota.redbend.com:443 HTTP/1.1\r\nHost: pb-ota.redbend.com:443\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), TIMEOUT_S)  # read to EOF: the proxy closed
            writer.close()
            return answer

    answer = run(scenario())
    assert answer == b"\x05\xff" and not answer.startswith(b"HTTP/")


def test_python_socks_with_remote_dns_reaches_a_cloud_host_known_only_to_the_lab_resolver(pki: PKI) -> None:
    async def scenario() -> tuple[bytes, str]:
        async with socks_lab(pki) as proxy:
            url = f"socks5://{proxy.address[0]}:{proxy.address[1]}"
            sock = await Proxy.from_url(url, rdns=True).connect("connectivitycheck.gstatic.com", 80, timeout=TIMEOUT_S)
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(GENERATE_204)
            plain = await asyncio.wait_for(reader.read(), TIMEOUT_S)
            writer.close()
            # TLS through SOCKS: the genuine PB chain, verified by the meter's own trust
            sock = await Proxy.from_url(url, rdns=True).connect("dlsdlp1.pb.com", 443, timeout=TIMEOUT_S)
            reader, writer = await asyncio.open_connection(sock=sock, ssl=pki.device_context(), server_hostname="dlsdlp1.pb.com")
            issuer = dict(x[0] for x in writer.get_extra_info("peercert")["issuer"])["organizationalUnitName"]
            writer.close()
            opened = [r.target for r in proxy.log if r.event == "tunnel_open"]
            assert opened == ["connectivitycheck.gstatic.com:80", "dlsdlp1.pb.com:443"]
            return plain, issuer

    plain, issuer = run(scenario())
    assert plain.startswith(b"HTTP/1.1 204 No Content\r\n")
    assert "PB Root" in issuer


def test_a_socks_connect_to_a_host_the_lab_cannot_resolve_gets_host_unreachable(pki: PKI) -> None:
    async def scenario() -> int | None:
        async with socks_lab(pki) as proxy:
            url = f"socks5://{proxy.address[0]}:{proxy.address[1]}"
            with pytest.raises(ProxyError) as info:
                await Proxy.from_url(url, rdns=True).connect("not-in-the-lab.example", 443, timeout=TIMEOUT_S)
            return info.value.error_code

    assert run(scenario()) == Reply.HOST_UNREACHABLE


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_socks5_hostname_fetches_generate_204_through_the_lab(pki: PKI) -> None:
    async def scenario() -> tuple[int, bytes]:
        async with socks_lab(pki) as proxy:
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", "--max-time", "10", "--socks5-hostname", f"{proxy.address[0]}:{proxy.address[1]}",
                "-o", "/dev/null", "-w", "%{http_code}", "http://connectivitycheck.gstatic.com/generate_204",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
            )  # fmt: skip
            out, _err = await asyncio.wait_for(proc.communicate(), 15)
            return proc.returncode or 0, out

    code, out = run(scenario(), timeout_s=20)
    assert (code, out) == (0, b"204")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_as_an_http_proxy_client_fails_on_the_socks_answer(pki: PKI) -> None:
    async def scenario() -> tuple[int, bytes]:
        async with socks_lab(pki) as proxy:
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", "--max-time", "10", "-p", "-x", f"http://{proxy.address[0]}:{proxy.address[1]}",
                "-o", "/dev/null", "http://connectivitycheck.gstatic.com/generate_204",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"PATH": "/usr/bin:/bin"},
            )  # fmt: skip
            _out, err = await asyncio.wait_for(proc.communicate(), 15)
            return proc.returncode or 0, err

    code, err = run(scenario(), timeout_s=20)
    assert code != 0 and b"CONNECT" in err, err  # e.g. "Proxy CONNECT aborted" / "Received HTTP/0.9 when not allowed"


# -- the handshake, socket-free -------------------------------------------------------------------
class FakeConn:
    """A ClientConn fed from a script of chunks; records what the fault writes and the tunnel it asks for."""

    def __init__(self, *chunks: bytes, users: dict[str, str] | None = None, refusal: Refusal | None = None) -> None:
        self.peer = ("127.0.0.1", 50000)
        self.sockname = ("127.0.0.1", 1080)
        self.chunks = list(chunks)
        self.buf = bytearray()
        self.out = bytearray()
        self.closed = False
        self.ctx: Ctx | None = None
        self.refusal = refusal
        self.auth = BasicAuth(users or {})
        self.auth_required = self.auth.enabled

    def check_credentials(self, user: str, password: str) -> AuthResult:
        return self.auth.verify("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())

    def buffered(self) -> bytes:
        return bytes(self.buf)

    def consume(self, n: int) -> None:
        del self.buf[:n]

    async def read_more(self, timeout_s: float) -> bool:
        if not self.chunks:
            return False
        self.buf += self.chunks.pop(0)
        return True

    def write(self, data: bytes) -> None:
        self.out += data

    async def close(self, linger_s: float = 1.0) -> None:
        self.closed = True

    def reset(self) -> None:
        self.closed = True

    def new_ctx(self, host: str, port: int) -> Ctx:
        return Ctx(self.peer, self.sockname, host, port)

    async def tunnel(self, ctx: Ctx, answer: AnswerFn) -> None:
        self.ctx = ctx
        self.out += answer(self.refusal)


def drive(conn: FakeConn) -> FakeConn:
    assert asyncio.run(make_fault("socks_only").handle_client(conn)) is True  # type: ignore[arg-type]
    return conn


def test_without_users_no_auth_is_chosen_and_the_tunnel_runs_for_the_named_host() -> None:
    conn = drive(FakeConn(greeting_bytes(Method.NO_AUTH), request_bytes("pb-ota.redbend.com", 443)))
    assert bytes(conn.out) == b"\x05\x00" + reply(Reply.SUCCEEDED)
    assert conn.ctx is not None and (conn.ctx.host, conn.ctx.port) == ("pb-ota.redbend.com", 443)
    assert conn.ctx.notes["socks"] == "SOCKS5 CONNECT pb-ota.redbend.com:443 (DOMAIN)"


def test_greeting_and_request_in_one_chunk_are_both_read() -> None:
    conn = drive(FakeConn(greeting_bytes(Method.NO_AUTH) + request_bytes("10.0.0.7", 5938)))
    assert conn.ctx is not None and (conn.ctx.host, conn.ctx.port) == ("10.0.0.7", 5938)


def test_with_users_the_proxy_asks_for_username_and_password_and_names_the_user() -> None:
    conn = drive(
        FakeConn(
            greeting_bytes(Method.NO_AUTH, Method.USERNAME_PASSWORD),
            userpass_bytes("meter", "S3cret"),
            request_bytes("dlsdlp1.pb.com", 443),
            users={"meter": "S3cret"},
        )
    )
    assert bytes(conn.out) == b"\x05\x02" + b"\x01\x00" + reply(Reply.SUCCEEDED)
    assert conn.ctx is not None and conn.ctx.user == "meter"


def test_a_wrong_password_is_answered_01_01_and_closed_without_a_tunnel() -> None:
    conn = drive(
        FakeConn(
            greeting_bytes(Method.USERNAME_PASSWORD), userpass_bytes("meter", "wrong"), users={"meter": "S3cret"}
        )
    )
    assert bytes(conn.out) == b"\x05\x02\x01\x01" and conn.closed and conn.ctx is None


def test_with_users_a_client_offering_no_credentials_gets_05_ff() -> None:
    conn = drive(FakeConn(greeting_bytes(Method.NO_AUTH), users={"meter": "S3cret"}))
    assert bytes(conn.out) == b"\x05\xff" and conn.closed and conn.ctx is None


def test_bind_and_udp_associate_are_answered_command_not_supported() -> None:
    conn = drive(FakeConn(greeting_bytes(Method.NO_AUTH), request_bytes("10.0.0.7", 21, Command.BIND)))
    assert bytes(conn.out) == b"\x05\x00" + reply(Reply.COMMAND_NOT_SUPPORTED) and conn.ctx is None


def test_a_client_that_leaves_mid_handshake_is_closed_quietly() -> None:
    conn = drive(FakeConn(b"\x05\x02\x00"))  # two methods announced, one sent, then EOF
    assert bytes(conn.out) == b"" and conn.closed


@pytest.mark.parametrize(
    ("refusal", "code"),
    [
        (squid_dns_fail("x.example:443", "x.example", "no such name"), Reply.HOST_UNREACHABLE),
        (squid_connect_fail("x.example:443", "10.0.0.1:443", errno=111, message="Connection refused", timeout=False, server="squid"), Reply.CONNECTION_REFUSED),
        (squid_connect_fail("x.example:443", "10.0.0.1:443", errno=110, message="timed out", timeout=True, server="squid"), Reply.TTL_EXPIRED),
        (lab_error(403, "policy"), Reply.NOT_ALLOWED),  # allow_ports, deny_hosts, exclusions
        (lab_error(502, "engine"), Reply.GENERAL_FAILURE),
    ],
)
def test_a_refusal_on_the_socks_path_becomes_the_matching_socks_reply(refusal: Refusal, code: Reply) -> None:
    assert reply_for(refusal) == reply(code)
    conn = drive(FakeConn(greeting_bytes(Method.NO_AUTH), request_bytes("x.example", 443), refusal=refusal))
    assert bytes(conn.out) == b"\x05\x00" + reply(code)


@pytest.mark.parametrize(
    "settings",
    [
        {"handshake_timeout_s": 0},  # no time at all
        {"hosts": ["*.pb.com"]},  # the listener as a whole is SOCKS: it cannot be scoped to hosts
        {"ports": [443]},  # nor to ports
    ],
)
def test_bad_settings_are_rejected_when_the_scenario_loads(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="socks_only"):
        make_fault("socks_only", settings)


# -- the device, end to end -----------------------------------------------------------------------
def test_the_device_sees_protocol_mismatch_on_every_endpoint_it_tunnels(pki: PKI, tmp_path: Path) -> None:
    async def scenario() -> list[Result]:
        async with socks_lab(pki) as proxy:
            settings = DeviceSettings(proxy=ProxySettings(*proxy.address))
            with Device(settings, pki, proxy.resolver, journal_path=tmp_path / "journal.sqlite3") as device:
                return await device.run(["funds", "downloads", "connectivity_check", "remote_access"])

    results = run(scenario(), timeout_s=60)
    tunnelled = [r for r in results if not r.endpoint.startswith("dns+")]  # DNS probes go direct
    assert len(tunnelled) > 5
    for r in tunnelled:
        assert r.outcome is Outcome.PROTOCOL_MISMATCH, (r.endpoint, r.outcome, r.detail)
