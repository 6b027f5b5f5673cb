"""challenge_style: the envoy-style 401 Bearer answer, or a 407 that names no scheme."""

from __future__ import annotations

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.auth import BasicAuth
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream

CREDS = ("meter", "S3cret")
CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "distservp1.pb.com", 443)
CHALLENGE = BasicAuth(dict([CREDS])).challenge("no Proxy-Authorization header")


def test_401_bearer_replaces_the_407_with_envoys_answer() -> None:
    refusal = make_fault("challenge_style", {"style": "401_bearer"}).on_auth(CTX, CHALLENGE)
    assert refusal is not None
    assert refusal.to_bytes() == (
        b'HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=""\r\ncontent-length: 0\r\n'
        b"server: envoy\r\nconnection: close\r\n\r\n"
    )


def test_407_no_header_drops_only_the_challenge() -> None:
    refusal = make_fault("challenge_style", {"style": "407_no_header"}).on_auth(CTX, CHALLENGE)
    assert refusal is not None and refusal.status == 407
    assert refusal.get("Proxy-Authenticate") is None and refusal.body == CHALLENGE.body


def test_a_request_that_passed_authentication_is_left_alone() -> None:
    assert make_fault("challenge_style", {}).on_auth(CTX, None) is None


def test_through_the_proxy_the_client_sees_401_without_credentials_and_200_with_them() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver({("distservp1.pb.com", None): ("127.0.0.1", up.port)})
            config = ProxyConfig(
                users=dict([CREDS]), faults=[make_fault("challenge_style", {"style": "401_bearer"})]
            )
            async with lab_proxy(config, resolver) as proxy:
                c = await client(proxy)
                answer = await c.connect("distservp1.pb.com:443")
                assert answer.status == 401 and answer.header("www-authenticate") == 'Bearer realm=""'
                assert answer.header("Proxy-Authenticate") is None
                await c.close()
                c = await client(proxy)  # negative control
                assert (await c.connect("distservp1.pb.com:443", auth=CREDS)).status == 200
                await c.close()

    run(scenario())
