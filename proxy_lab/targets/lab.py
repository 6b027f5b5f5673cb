"""The `lab` target: the lab proxy, configured from a scenario's (or any) users and faults.

`LabTarget.serve(spec, lab)` starts a lab proxy for a `ProxySpec` (users, realm, faults) on the
lab's resolver, which is how a scenario runs on the lab (`proxy_for`, a preset emulated by the
preset's faults) and how `proxy-lab check --lab` builds its proxy. It is the one place that builds a
lab proxy inside a lab, so it is the one place that lends the lab to the faults (`Fault.attach`).

With `spec.upstream` (a scenario's `[proxy.upstream]`) it first starts a second lab proxy as the
corporate proxy, with that table's users and faults, and chains the first to it (`ProxyConfig.upstream`,
as `proxy-lab proxy --upstream` does): meter -> lab proxy (the scenario's faults) -> corporate proxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from proxy_lab.errors import ConfigError, SetupError
from proxy_lab.lab import Lab
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.proxy.chain import UpstreamProxy
from proxy_lab.scenarios import ProxySpec, Scenario
from proxy_lab.targets.base import ProxyEndpoint
from proxy_lab.targets.presets import lab_scenario_for_preset


def proxy_config(spec: ProxySpec, lab: Lab, *, where: str | None = "proxy", with_faults: bool = True) -> ProxyConfig:
    """The lab proxy's configuration for `spec`, its faults attached to `lab`; a ConfigError for a
    bad fault starts with `where` (the scenario file and table) when one is given."""
    faults = []
    if with_faults:
        for i, f in enumerate(spec.faults):
            try:
                fault = make_fault(f.name, f.settings)
            except ConfigError as exc:
                if where is None:
                    raise
                raise ConfigError(f"{where}.faults[{i}]: {exc}") from exc
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
    needs_namespace = False

    def skip_reason(self, scenario: Scenario) -> str | None:
        return None  # the lab proxy expresses every fault; a preset by its lab equivalent

    @asynccontextmanager
    async def serve(
        self, spec: ProxySpec, lab: Lab, *, where: str | None = "proxy", with_faults: bool = True
    ) -> AsyncIterator[ProxyEndpoint]:
        """A lab proxy for `spec` on `lab`'s resolver (chained to a corporate proxy when `spec.upstream`),
        stopped on exit; SetupError when it cannot listen."""
        config = proxy_config(spec, lab, where=where, with_faults=with_faults)
        async with AsyncExitStack() as stack:
            described = "lab proxy"
            if spec.upstream is not None:
                up = spec.upstream
                corp_spec = ProxySpec(users=dict(up.users), realm=up.realm, faults=up.faults)
                where_up = f"{where}.upstream" if where is not None else None
                corp = await stack.enter_async_context(
                    _started(LabProxy(proxy_config(corp_spec, lab, where=where_up), lab.resolver), "corporate proxy")
                )
                user, password = up.user_password
                config.upstream = UpstreamProxy(corp.address[0], corp.address[1], user, password)
                described = f"lab proxy chained to the corporate proxy {corp.address[0]}:{corp.address[1]}"
            proxy = await stack.enter_async_context(_started(LabProxy(config, lab.resolver), "lab proxy"))
            host, port = proxy.address
            yield ProxyEndpoint(host, port, described)

    @asynccontextmanager
    async def proxy_for(self, scenario: Scenario, lab: Lab, *, with_faults: bool = True) -> AsyncIterator[ProxyEndpoint]:
        scenario = lab_scenario_for_preset(scenario)  # a preset's product rules, emulated by its faults
        async with self.serve(scenario.proxy, lab, where=f"{scenario.path or scenario.id}: proxy", with_faults=with_faults) as ep:
            yield ep


@asynccontextmanager
async def _started(proxy: LabProxy, what: str) -> AsyncIterator[LabProxy]:
    try:
        await proxy.start()
    except OSError as exc:
        raise SetupError(f"{what} could not start: {exc}") from exc
    try:
        yield proxy
    finally:
        await proxy.stop()
