"""exclusions: hosts meant to go DIRECT are refused by the proxy, because the meter cannot bypass it."""

from __future__ import annotations

import asyncio

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.proxy.faults import Ctx
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, upstream


def ctx(host: str, port: int = 443) -> Ctx:
    return Ctx(client=("127.0.0.1", 50000), proxy=("127.0.0.1", 3128), host=host, port=port)


def test_a_direct_host_gets_squids_403_and_others_pass() -> None:
    fault = make_fault("exclusions", {"direct_hosts": ["*.corp.example"]})
    refusal = asyncio.run(fault.on_connect(ctx("intranet.corp.example")))
    assert refusal is not None and refusal.status == 403
    assert refusal.get("X-Squid-Error") == "ERR_ACCESS_DENIED 0" and "DIRECT" in refusal.why
    assert asyncio.run(fault.on_connect(ctx("distservp1.pb.com"))) is None


def test_internal_ip_literals_are_refused_when_asked() -> None:
    fault = make_fault("exclusions", {"internal_addresses": True})
    assert asyncio.run(fault.on_connect(ctx("192.168.10.5"))) is not None
    assert asyncio.run(fault.on_connect(ctx("fd00::5"))) is not None
    assert asyncio.run(fault.on_connect(ctx("8.8.8.8"))) is None  # a public address (no traffic is sent)
    assert asyncio.run(fault.on_connect(ctx("intranet"))) is None


def test_an_exclusions_fault_without_hosts_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="direct_hosts"):
        make_fault("exclusions", {})


def test_through_the_proxy_the_direct_host_is_refused_and_a_pb_host_tunnels() -> None:
    async def scenario() -> None:
        async with upstream() as up:
            resolver = MapResolver(
                {
                    ("intranet.corp.example", None): ("127.0.0.1", up.port),
                    ("distservp1.pb.com", None): ("127.0.0.1", up.port),
                }
            )
            config = ProxyConfig(faults=[make_fault("exclusions", {"direct_hosts": ["*.corp.example"]})])
            async with lab_proxy(config, resolver) as proxy:
                c = await client(proxy)
                assert (await c.connect("intranet.corp.example:443")).status == 403
                await c.close()
                c = await client(proxy)
                assert (await c.connect("distservp1.pb.com:443")).status == 200
                await c.close()

    run(scenario())
