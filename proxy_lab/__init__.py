"""proxy-lab: will an office postage meter's traffic survive this corporate proxy, and if not, why?

The public surface, for scripts and test suites (imported lazily, so `proxy-lab --help` stays fast):

    from proxy_lab import Lab, load_scenarios, run_scenarios
    async with Lab.create() as lab:
        runs = await run_scenarios(load_scenarios([Path("scenarios")]), lab=lab)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy_lab.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Catalog": "proxy_lab.catalog",
    "Endpoint": "proxy_lab.catalog",
    "load_catalog": "proxy_lab.catalog",
    "Outcome": "proxy_lab.outcomes",
    "Result": "proxy_lab.outcomes",
    "Evidence": "proxy_lab.outcomes",
    "PKI": "proxy_lab.pki",
    "Cloud": "proxy_lab.cloud",
    "Lab": "proxy_lab.lab",
    "Device": "proxy_lab.device",
    "DeviceSettings": "proxy_lab.device",
    "ProxySettings": "proxy_lab.device",
    "LabProxy": "proxy_lab.proxy",
    "ProxyConfig": "proxy_lab.proxy",
    "make_fault": "proxy_lab.proxy",
    "Scenario": "proxy_lab.scenarios",
    "load_scenario": "proxy_lab.scenarios",
    "load_scenarios": "proxy_lab.scenarios",
    "ScenarioRun": "proxy_lab.runs",
    "run_scenarios": "proxy_lab.runner",
    "ConfigError": "proxy_lab.errors",
}
__all__ = [
    "PKI",
    "Catalog",
    "Cloud",
    "ConfigError",
    "Device",
    "DeviceSettings",
    "Endpoint",
    "Evidence",
    "Lab",
    "LabProxy",
    "Outcome",
    "ProxyConfig",
    "ProxySettings",
    "Result",
    "Scenario",
    "ScenarioRun",
    "load_catalog",
    "load_scenario",
    "load_scenarios",
    "make_fault",
    "run_scenarios",
]

if TYPE_CHECKING:
    from proxy_lab.catalog import Catalog, Endpoint, load_catalog
    from proxy_lab.cloud import Cloud
    from proxy_lab.device import Device, DeviceSettings, ProxySettings
    from proxy_lab.errors import ConfigError
    from proxy_lab.lab import Lab
    from proxy_lab.outcomes import Evidence, Outcome, Result
    from proxy_lab.pki import PKI
    from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
    from proxy_lab.runner import run_scenarios
    from proxy_lab.runs import ScenarioRun
    from proxy_lab.scenarios import Scenario, load_scenario, load_scenarios


__getattr__ = lazy_exports(__name__, _EXPORTS)
