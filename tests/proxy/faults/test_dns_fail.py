"""dns_fail: the proxy cannot resolve the hosts in scope and answers as Squid (503) or nginx (502)."""

from __future__ import annotations

import asyncio

import pytest

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx, Refuse
from proxy_lab.resolver import Address, MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream

CTX = Ctx(("127.0.0.1", 50000), ("127.0.0.1", 3128), "pb-ota.redbend.com", 443)


async def never(host: str, port: int) -> list[Address]:
    raise AssertionError("dns_fail must not consult the real resolver")


def test_squid_style_is_503_err_dns_fail_with_squids_wording() -> None:
    with pytest.raises(Refuse) as info:
        asyncio.run(make_fault("dns_fail", {}).resolve(CTX, "pb-ota.redbend.com", 443, never))
    refusal = info.value.refusal
    assert (refusal.status, refusal.reason) == (503, "Service Unavailable")
    assert refusal.get("X-Squid-Error") == "ERR_DNS_FAIL 0" and refusal.get("Server") == "squid"
    assert b"Unable to determine IP address from host name <q>pb-ota.redbend.com</q>" in refusal.body


def test_nginx_style_is_its_502_page() -> None:
    with pytest.raises(Refuse) as info:
        asyncio.run(make_fault("dns_fail", {"style": "nginx"}).resolve(CTX, "pb-ota.redbend.com", 443, never))
    refusal = info.value.refusal
    assert refusal.status == 502 and refusal.get("Server") == "nginx"
    assert b"<center><h1>502 Bad Gateway</h1></center>" in refusal.body


def test_through_the_proxy_only_the_hosts_in_scope_fail_to_resolve() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver(
                {(h, None): ("127.0.0.1", up.port) for h in ("pb-ota.redbend.com", "dlsdlp1.pb.com")}
            )
            fault = make_fault("dns_fail", {"hosts": ["*.redbend.com"]})
            async with lab_proxy(ProxyConfig(faults=[fault]), resolver) as proxy:
                c = await client(proxy)
                answer = await c.connect("pb-ota.redbend.com:443")
                assert answer.status == 503 and answer.header("X-Squid-Error") == "ERR_DNS_FAIL 0"
                await c.close()
                c = await client(proxy)  # negative control: out of scope, resolves
                assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
                await c.close()
                refused = [r for r in proxy.log if r.event == "refused"]
                assert [r.reason for r in refused] == [
                    "dns_fail: pb-ota.redbend.com does not resolve (squid style)"
                ]

    run(scenario())
