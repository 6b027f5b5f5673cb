"""Presets: real products configured as people really run them, each with its lab equivalent.

A preset names a product and the lab proxy settings (users and faults) that emulate it. A scenario
with `[proxy] preset = "squid-stock"` runs on that product (its target builds the product's
configuration from the same settings) and on the `lab` target (which runs
`lab_scenario_for_preset(scenario)`), so the two can be compared cell by cell. Run with another
product, it is skipped: a tinyproxy is not a stock Squid.

| preset | product | models | lab equivalent |
|---|---|---|---|
| squid-stock | squid | Debian's squid.conf: `acl SSL_ports port 443`, `http_access deny CONNECT !SSL_ports` | allow_ports ssl_ports_only |
| squid-compliant | squid | SSL_ports widened to the guide's ports | allow_ports 80 443 5228 5938 |
| squid-basic-auth | squid | the same, plus `auth_param basic` with basic_ncsa_auth (`casesensitive off`, Squid's default) | users, user names case-insensitive |
| squid-ssl-bump | squid (squid-openssl) | SslBump with the corporate CA, `*.pb.com` spliced (a partial bypass) | tls_inspect bypass *.pb.com |
| tinyproxy-stock | tinyproxy | Debian's tinyproxy.conf: no ConnectPort line, so CONNECT to every port | none |
| tinyproxy-connectport-443 | tinyproxy | `ConnectPort 443` | allow_ports 443 |
| mitmproxy-default | mitmproxy | regular mode, intercepting with the corporate CA | tls_inspect |
| mitmproxy-passthrough | mitmproxy | `ignore_hosts` everything | none |
| proxypy-basic-auth | proxypy | `--basic-auth meter:...` | users |

squid-ssl-bump models a partial bypass (an assumption of this project: a common way IT exempts a
vendor): `*.pb.com` is spliced by SNI (`ssl_bump splice`, as the Squid wiki's "Pass Teamviewer via
SSL Bump-aware Squid" does for one vendor), the other hosts the meter needs are inspected. The compliant port list adds 5228 to the guide's proxy ports (80, 443, 5938): the guide's device
management list names mobile-gtalk.l.google.com on port 5228, so a proxy allowing only the three
refuses that recommended service.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from proxy_lab.errors import ConfigError, TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec, Scenario

PRESET_PASSWORD = "Postage-2020!"
COMPLIANT_PORTS = [80, 443, 5228, 5938]


@dataclass(frozen=True)
class Preset:
    name: str
    product: str  # the target that runs it for real
    models: str  # the real configuration it stands for, and where that is documented
    spec: ProxySpec  # the lab proxy's users and faults that emulate it


def _allow(ports: list[int]) -> FaultSpec:
    return FaultSpec("allow_ports", {"ports_allowed": list(ports)})


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "squid-stock",
            "squid",
            "Debian's /etc/squid/squid.conf (squid 5.7): acl SSL_ports port 443; http_access deny CONNECT !SSL_ports",
            ProxySpec(faults=(FaultSpec("allow_ports", {"preset": "ssl_ports_only"}),)),
        ),
        Preset(
            "squid-compliant",
            "squid",
            "Debian's squid.conf with SSL_ports widened to 80 443 5228 5938 (the guide's ports)",
            ProxySpec(faults=(_allow(COMPLIANT_PORTS),)),
        ),
        Preset(
            "squid-basic-auth",
            "squid",
            "squid-compliant plus auth_param basic program basic_ncsa_auth (casesensitive off, the default)",
            ProxySpec(
                users={"meter": PRESET_PASSWORD},
                realm="Squid proxy-caching web server",
                username_case_sensitive=False,
                faults=(_allow(COMPLIANT_PORTS),),
            ),
        ),
        Preset(
            "squid-ssl-bump",
            "squid",
            "squid-compliant plus ssl_bump peek/splice/bump with the corporate CA, splicing ssl::server_name *.pb.com "
            "(needs a squid built with OpenSSL: Debian's squid-openssl)",
            ProxySpec(faults=(_allow(COMPLIANT_PORTS), FaultSpec("tls_inspect", {"bypass": ["*.pb.com"]}))),
        ),
        Preset(
            "tinyproxy-stock",
            "tinyproxy",
            "Debian's /etc/tinyproxy/tinyproxy.conf (tinyproxy 1.11.1): no ConnectPort line, CONNECT to every port",
            ProxySpec(),
        ),
        Preset(
            "tinyproxy-connectport-443",
            "tinyproxy",
            "Debian's tinyproxy.conf with its commented example enabled: ConnectPort 443",
            ProxySpec(faults=(_allow([443]),)),
        ),
        Preset(
            "mitmproxy-default",
            "mitmproxy",
            "mitmdump in regular mode, intercepting TLS with the corporate inspection CA",
            ProxySpec(faults=(FaultSpec("tls_inspect", {}),)),
        ),
        Preset(
            "mitmproxy-passthrough",
            "mitmproxy",
            "mitmdump with ignore_hosts matching every host: tunnels passed on unmodified",
            ProxySpec(),
        ),
        Preset(
            "proxypy-basic-auth",
            "proxypy",
            "proxy.py --basic-auth meter:<password>",
            ProxySpec(users={"meter": PRESET_PASSWORD}),
        ),
    )
}


def get_preset(name: str, where: str = "proxy.preset") -> Preset:
    preset = PRESETS.get(name)
    if preset is None:
        raise ConfigError(f"{where}: unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return preset


def effective_spec(spec: ProxySpec, where: str = "proxy.preset") -> ProxySpec:
    """The proxy settings a scenario means: its preset's, plus the scenario's own users and faults."""
    if spec.preset is None:
        return spec
    base = get_preset(spec.preset, where).spec
    return dataclasses.replace(
        base,
        users={**base.users, **spec.users},
        faults=base.faults + spec.faults,
        preset=spec.preset,
    )


def lab_scenario_for_preset(scenario: Scenario) -> Scenario:
    """The scenario as the lab proxy runs it: the preset's users and faults in place of its name."""
    if scenario.proxy.preset is None:
        return scenario
    where = f"{scenario.path or scenario.id}: proxy.preset"
    spec = dataclasses.replace(effective_spec(scenario.proxy, where), preset=None)
    return dataclasses.replace(scenario, proxy=spec)


def check_product(scenario: Scenario, product: str) -> None:
    """Raise TargetSkipped when the scenario's preset belongs to another product."""
    name = scenario.proxy.preset
    if name is None:
        return
    preset = get_preset(name, f"{scenario.path or scenario.id}: proxy.preset")
    if preset.product != product:
        raise TargetSkipped(f"preset {name!r} is a {preset.product} configuration, not one of {product}")
