"""auth_schemes: a proxy offering only NTLM/Negotiate answers 407 as Squid for Windows does; Basic cannot pass."""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import shutil
import struct

import pytest

from proxy_lab.proxy import ProxyConfig, make_fault, ntlm
from proxy_lab.proxy.events import ConnectRequest
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream

CREDS = ("meter", "S3cret")


def ctx(user: str | None, authorization: str | None) -> Ctx:
    headers = (("Proxy-Authorization", authorization),) if authorization else ()
    request = ConnectRequest("distservp1.pb.com", 443, headers)
    return Ctx(
        ("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 443, request=request, user=user
    )


def test_ntlm_only_answers_squids_407_and_refuses_valid_basic_credentials() -> None:
    fault = make_fault("auth_schemes", {"schemes": ["Negotiate", "NTLM"]})
    refusal = fault.on_auth(
        ctx("meter", "Basic bWV0ZXI6UzNjcmV0"), None
    )  # valid Basic, let through by the proxy
    assert refusal is not None and refusal.status == 407
    head = refusal.to_bytes().split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"HTTP/1.1 407 Proxy Authentication Required"
    assert [h for h in head if h.startswith(b"Proxy-Authenticate")] == [
        b"Proxy-Authenticate: Negotiate",
        b"Proxy-Authenticate: NTLM",
    ]
    assert b"X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0" in head and b"Connection: close" in head
    assert b"Server: squid" in head and b"Cache Access Denied" in refusal.body
    assert "Basic credentials are not accepted" in refusal.why


def test_basic_passes_only_when_offered_and_the_credentials_matched_a_user() -> None:
    fault = make_fault("auth_schemes", {"schemes": ["NTLM", "Basic"], "realm": "corp"})
    assert fault.on_auth(ctx("meter", "Basic bWV0ZXI6UzNjcmV0"), None) is None
    refusal = fault.on_auth(ctx(None, None), None)  # no credentials
    assert refusal is not None
    assert [v for k, v in refusal.headers if k == "Proxy-Authenticate"] == ["NTLM", 'Basic realm="corp"']


def _resolver(port: int) -> MapResolver:
    return MapResolver({("distservp1.pb.com", None): ("127.0.0.1", port)})


def test_through_the_proxy_a_basic_only_client_cannot_pass_an_ntlm_proxy() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            config = ProxyConfig(
                users=dict([CREDS]), faults=[make_fault("auth_schemes", {"schemes": ["NTLM"]})]
            )
            async with lab_proxy(config, _resolver(up.port)) as proxy:
                c = await client(proxy)
                answer = await c.connect("distservp1.pb.com:443", auth=CREDS)
                assert answer.status == 407 and answer.header("Proxy-Authenticate") == "NTLM"
                assert await c.read_to_eof() == b""  # Connection: close, as captured
                await c.close()
            # negative control: the same client passes when the proxy also offers Basic
            config = ProxyConfig(
                users=dict([CREDS]), faults=[make_fault("auth_schemes", {"schemes": ["Negotiate", "Basic"]})]
            )
            async with lab_proxy(config, _resolver(up.port)) as proxy:
                c = await client(proxy)
                assert (await c.connect("distservp1.pb.com:443", auth=CREDS)).status == 200
                await c.close()

    run(scenario())


# -- NTLM, carried out as an NTLM proxy does (proxy_lab/proxy/ntlm.py) -----------------------------------
def ntlm_ctx(conn_id: int, token: bytes, password_of=None) -> Ctx:
    headers = (("Proxy-Authorization", "NTLM " + base64.b64encode(token).decode()),)
    request = ConnectRequest("distservp1.pb.com", 443, headers)
    lookup = password_of or (lambda user: ("meter", "S3cret") if user.casefold() == "meter" else None)
    return Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 443, request=request,
               conn_id=conn_id, password_of=lookup)  # fmt: skip


NEGOTIATE = ntlm.SIGNATURE + struct.pack("<II", ntlm.NEGOTIATE, 0xA2088207) + bytes(16)


def authenticate(challenge_header: str, user: str, password: str, domain: str = "CORP", *, v1: bool = False) -> bytes:
    """What a client answers to the CHALLENGE in `challenge_header` (`NTLM <base64>`), NTLMv2 unless `v1`."""
    message = base64.b64decode(challenge_header.split(" ", 1)[1])
    server_challenge = message[24:32]
    info_len, _, info_at = struct.unpack_from("<HHI", message, 40)
    target_info = message[info_at : info_at + info_len]
    if v1:
        nt = bytes(24)
    else:
        blob = b"\x01\x01" + bytes(6) + bytes(8) + b"\xaa" * 8 + bytes(4) + target_info + bytes(4)
        key = ntlm.ntowf_v2(password, user, domain)
        nt = hmac.new(key, server_challenge + blob, "md5").digest() + blob
    fields = [bytes(24), nt, domain.encode("utf-16-le"), user.encode("utf-16-le"), "PC1".encode("utf-16-le")]
    offset, header, body = 64, b"", b""
    for value in fields:
        header += struct.pack("<HHI", len(value), len(value), offset + len(body))
        body += value
    head = ntlm.SIGNATURE + struct.pack("<I", ntlm.AUTHENTICATE) + header + struct.pack("<HHI", 0, 0, offset + len(body))
    return head + struct.pack("<I", ntlm.NEGOTIATE_UNICODE) + body


def challenge_of(refusal) -> str:
    assert refusal is not None and refusal.status == 407 and refusal.keep_alive  # the handshake needs the connection
    (header,) = [v for k, v in refusal.headers if k == "Proxy-Authenticate"]
    assert header.startswith("NTLM ")
    return header


def test_ntlm_negotiate_gets_a_challenge_and_a_valid_ntlmv2_answer_passes_as_the_user() -> None:
    fault = make_fault("auth_schemes", {"schemes": ["NTLM"], "domain": "Corp"})  # close=True as captured
    header = challenge_of(fault.on_auth(ntlm_ctx(7, NEGOTIATE), None))
    message = base64.b64decode(header[5:])
    assert ntlm.message_type(message) == ntlm.CHALLENGE
    flags = struct.unpack_from("<I", message, 20)[0]
    assert flags & ntlm.TARGET_INFO and flags & ntlm.NEGOTIATE_UNICODE
    assert "CORP".encode("utf-16-le") in message
    ctx = ntlm_ctx(7, authenticate(header, "METER", "S3cret"))
    assert fault.on_auth(ctx, None) is None
    assert ctx.user == "meter" and ctx.auth_why == "user 'meter' authenticated with NTLMv2"
    # the AUTHENTICATE message's own contents (user as sent, domain, workstation) are not repeated
    assert not {"METER", "CORP", "PC1"} & set(ctx.auth_why.replace("'", " ").split())


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (lambda h: authenticate(h, "meter", "wrong"), "does not match the password"),
        (lambda h: authenticate(h, "someone", "S3cret"), "unknown user (7 characters)"),
        (lambda h: authenticate(h, "meter", "S3cret", v1=True), "NTLMv1 response from user 'meter' refused"),
        (lambda h: b"NTLMSSP\x00\x03\x00\x00\x00" + bytes(8), "shorter than its 64-byte header"),
    ],
    ids=["wrong-password", "unknown-user", "ntlmv1", "truncated"],
)
def test_a_bad_ntlm_answer_gets_the_first_407_again_with_the_reason(answer, why) -> None:
    fault = make_fault("auth_schemes", {"schemes": ["NTLM", "Negotiate"]})
    header = challenge_of(fault.on_auth(ntlm_ctx(1, NEGOTIATE), None))
    refusal = fault.on_auth(ntlm_ctx(1, answer(header)), None)
    assert refusal is not None and refusal.status == 407 and why in refusal.why
    assert [v for k, v in refusal.headers if k == "Proxy-Authenticate"] == ["NTLM", "Negotiate"]
    assert "S3cret" not in refusal.why and "wrong" not in refusal.why


def test_ntlm_authenticates_one_connection_only() -> None:
    fault = make_fault("auth_schemes", {"schemes": ["NTLM"]})
    header = challenge_of(fault.on_auth(ntlm_ctx(1, NEGOTIATE), None))
    refusal = fault.on_auth(ntlm_ctx(2, authenticate(header, "meter", "S3cret")), None)  # another connection
    assert refusal is not None and "without a CHALLENGE on this connection" in refusal.why
    refusal = fault.on_auth(ntlm_ctx(1, b"not base64 at all!"), None)
    assert refusal is not None and "malformed NTLM token" in refusal.why


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("close", [True, False])
def test_curl_with_ntlm_passes_the_ntlm_only_proxy_that_stops_basic(close: bool) -> None:
    async def curl(proxy_url: str, *args: str) -> tuple[int, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x", proxy_url,
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        return int(proc.returncode or 0), out.decode()

    async def scenario() -> None:
        async with upstream() as up:
            fault = make_fault("auth_schemes", {"schemes": ["NTLM"], "close": close})
            async with lab_proxy(ProxyConfig(users=dict([CREDS]), faults=[fault]), _resolver(up.port)) as proxy:
                url = f"http://distservp1.pb.com:{up.port}/"
                code, connect = await curl(proxy.url, "--proxy-ntlm", "--proxy-user", "meter:S3cret", url)
                assert connect == "200", (code, connect)
                assert any(r.event == "tunnel_open" and "(user 'meter')" in r.message for r in proxy.log)
                code, connect = await curl(proxy.url, "--proxy-ntlm", "--proxy-user", "meter:wrong", url)
                assert (code, connect) == (56, "407")
                code, connect = await curl(proxy.url, "--proxy-basic", "--proxy-user", "meter:S3cret", url)
                assert (code, connect) == (56, "407")
                assert sum("does not match the password" in r.reason for r in proxy.log) == 1

    run(scenario())
