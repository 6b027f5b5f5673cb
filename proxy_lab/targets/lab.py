"""The `lab` target: the lab proxy, configured from the scenario's users and faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from proxy_lab.errors import ConfigError
from proxy_lab.lab import Lab
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.scenarios import Scenario
from proxy_lab.targets import ProxyEndpoint, SetupError, register


def proxy_config(scenario: Scenario, lab: Lab, *, with_faults: bool = True) -> ProxyConfig:
    spec = scenario.proxy
    faults = []
    if with_faults:
        for f in spec.faults:
            where = f"{scenario.path or scenario.id}: proxy.faults.{f.name}"
            try:
                fault = make_fault(f.name, f.settings)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            fault.attach(lab)
            faults.append(fault)
    return ProxyConfig(
        users=dict(spec.users),
        realm=spec.realm,
        username_case_sensitive=spec.username_case_sensitive,
        close_after_407=spec.close_after_407,
        connect_timeout_s=spec.connect_timeout_s,
        faults=faults,
    )


class LabTarget:
    name = "lab"

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab, *, with_faults: bool = True) -> AsyncIterator[ProxyEndpoint]:
        if scenario.proxy.preset:
            from proxy_lab.targets.presets import lab_scenario_for_preset

            scenario = lab_scenario_for_preset(scenario)  # the preset's product rules, emulated
        config = proxy_config(scenario, lab, with_faults=with_faults)
        proxy = LabProxy(config, lab.resolver)
        try:
            await proxy.start()
        except OSError as exc:
            raise SetupError(f"lab proxy could not start: {exc}") from exc
        try:
            host, port = proxy.address
            yield ProxyEndpoint(host, port, "lab proxy")
        finally:
            await proxy.stop()


@register("lab")
def _lab() -> LabTarget:
    return LabTarget()
