"""auth_schemes: a proxy offering only NTLM/Negotiate answers 407 as Squid for Windows does; Basic cannot pass."""

from __future__ import annotations

from proxy_testkit import client, lab_proxy, run, upstream

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.events import ConnectRequest
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver

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
