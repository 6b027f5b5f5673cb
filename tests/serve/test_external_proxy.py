"""`--proxy URL --cloud-address IP`: the served meter probes through an existing proxy, which reaches
the cloud on the guide's real ports at that address (loopback here; binding 80/443/53 needs root)."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from pathlib import Path

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.errors import ConfigError
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.resolver import MapResolver
from proxy_lab.serve.served import ServeConfig
from proxy_lab.serve.thread import ServedLabThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class ApplianceThread:
    """The 'existing proxy': a lab proxy on its own loop whose DNS (a MapResolver here) sends the
    guide's hosts to the cloud address, as a lab network's DNS would."""

    def __init__(self, cloud_address: str, faults: list) -> None:
        table = {(e.host, e.port): (cloud_address, e.port) for e in load_catalog().endpoints() if e.via_proxy}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = LabProxy(ProxyConfig(faults=faults), MapResolver(table))
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="the cloud binds ports 80, 443 and 53: root only")
@pytest.mark.parametrize("appliance_faults", [[], [("allow_ports", {"preset": "ssl_ports_only"})]], ids=["open", "ssl-ports-only"])
def test_the_meter_probes_through_the_existing_proxy_and_shows_what_it_does(tmp_path: Path, appliance_faults):
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    appliance = ApplianceThread(address, [make_fault(n, s) for n, s in appliance_faults])
    try:
        config = ServeConfig(interval_s=5.0, certs_dir=tmp_path / "certs", proxy_url=appliance.proxy.url, cloud_address=address)
        with ServedLabThread(config) as served:
            status = served.client.status()
            assert status["meter"] == {"proxy": appliance.proxy.url, "external": True, "cloud_address": address}
            outcomes = {s["name"]: s["outcome"] for s in served.client.probe()["services"]}
            tunnels = appliance.proxy.stats.tunnels
    finally:
        appliance.close()
    assert tunnels > 0  # the meter went through the appliance, not the lab proxy
    if appliance_faults:
        # The appliance's own rule shows in the served lab, where no fault is in force.
        assert outcomes["online_help"] == "refused" and outcomes["funds"] == "pass"
    else:
        assert set(outcomes.values()) == {"pass"}, outcomes


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"proxy_url": "http://127.0.0.1:3128"}, "--cloud-address"),
        ({"proxy_url": "socks5://127.0.0.1:1080", "cloud_address": "127.0.0.9"}, "HTTP CONNECT"),
        ({"proxy_url": "http://127.0.0.1:99999", "cloud_address": "127.0.0.9"}, "--proxy"),
        ({"cloud_address": "cloud.example"}, "--cloud-address"),
    ],
)
def test_bad_external_proxy_options_are_refused_naming_the_option(kwargs, says):
    with pytest.raises(ConfigError, match=says):
        ServeConfig(**kwargs)
