"""deny_hosts: a URL filter's deny list, answered with a 403 block page naming the category."""

from __future__ import annotations

import asyncio

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream


def ctx(host: str, port: int = 443) -> Ctx:
    return Ctx(client=("127.0.0.1", 50000), proxy=("127.0.0.1", 3128), host=host, port=port)


def test_a_denied_host_gets_a_403_block_page_naming_the_category() -> None:
    fault = make_fault("deny_hosts", {"patterns": ["*.teamviewer.com"], "category": "Remote Access"})
    refusal = asyncio.run(fault.on_connect(ctx("Master3.TeamViewer.com", 5938)))
    assert refusal is not None and refusal.status == 403
    assert b"blocked by the web filter" in refusal.body and b"Category: Remote Access" in refusal.body
    assert refusal.get("X-Web-Filter-Category") == "Remote Access"
    assert asyncio.run(fault.on_connect(ctx("distservp1.pb.com"))) is None  # negative control


def test_through_the_proxy_the_filter_blocks_and_passes_as_configured() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver(
                {
                    ("master3.teamviewer.com", None): ("127.0.0.1", up.port),
                    ("dlsdlp1.pb.com", None): ("127.0.0.1", up.port),
                }
            )
            faults = [make_fault("deny_hosts", {"patterns": ["*.teamviewer.com"]})]
            async with lab_proxy(ProxyConfig(faults=faults), resolver) as proxy:
                c = await client(proxy)
                answer = await c.connect("master3.teamviewer.com:443")
                assert answer.status == 403 and b"Web Page Blocked" in answer.body
                await c.close()
                c = await client(proxy)
                assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
                await c.close()

    run(scenario())
