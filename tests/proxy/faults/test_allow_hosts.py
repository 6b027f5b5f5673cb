"""allow_hosts: a URL filter's allow list; every other host gets the 403 block page."""

from __future__ import annotations

import asyncio

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream


def ctx(host: str, port: int = 443) -> Ctx:
    return Ctx(client=("127.0.0.1", 50000), proxy=("127.0.0.1", 3128), host=host, port=port)


def test_an_allow_list_blocks_everything_else() -> None:
    fault = make_fault("allow_hosts", {"patterns": ["*.pb.com"]})
    assert asyncio.run(fault.on_connect(ctx("distservp1.pb.com"))) is None
    refusal = asyncio.run(fault.on_connect(ctx("pb-ota.redbend.com")))
    assert refusal is not None and refusal.status == 403 and b"Category: Uncategorized" in refusal.body
    assert "matches none of ['*.pb.com']" in refusal.why


def test_through_the_proxy_only_allowed_hosts_tunnel() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver(
                {
                    ("master3.teamviewer.com", None): ("127.0.0.1", up.port),
                    ("dlsdlp1.pb.com", None): ("127.0.0.1", up.port),
                }
            )
            faults = [make_fault("allow_hosts", {"patterns": ["*.pb.com"]})]
            async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:
                c = await client(proxy)
                assert (await c.connect("master3.teamviewer.com:443")).status == 403
                await c.close()
                c = await client(proxy)
                assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
                await c.close()

    run(scenario())
