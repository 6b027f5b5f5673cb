"""Site lint: check a site's network settings against the guide before the meter arrives.

Pure and fast: `lint_site(SiteSettings) -> list[Finding]`, no network. Each rule quotes the guide.
`proxy-lab lint --gateway IP [--proxy URL] [--wifi-security ...] [--ipv6 on|off]
[--bandwidth-kbps N] [--exclusions LIST]` exits 0 when no rule fails (warnings allowed), 1 when one
does, 2 on bad input.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from proxy_lab.catalog import INTERNAL_RANGES, load_catalog
from proxy_lab.errors import ConfigError

Level = Literal["error", "warning", "info"]

WIFI_SECURITY = ("wpa2", "wpa", "wep", "open", "802.1x")


@dataclass(frozen=True)
class SiteSettings:
    gateway: str
    proxy: str | None = None
    wifi_security: str | None = None
    ipv6: bool | None = None
    bandwidth_kbps: int | None = None
    exclusions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    rule: str
    level: Level
    message: str
    guide: str
    remedy: str


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)


def _in_internal_range(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return isinstance(addr, ipaddress.IPv4Address) and any(lo <= addr <= hi for lo, hi in INTERNAL_RANGES)


def lint_site(site: SiteSettings) -> list[Finding]:
    """Every rule the guide states about the site network, applied to `site`."""
    out: list[Finding] = []
    internal_quote = (
        "Advanced Network Requirements: 'internal base and tablet communication uses a subnet that consists "
        "of IPs from the 192.168.10.240 to 192.168.10.255 and 192.168.10.96 to 192.168.10.111 ranges'"
    )
    try:
        ipaddress.ip_address(site.gateway)
    except ValueError as exc:
        raise ConfigError(f"--gateway {site.gateway!r}: expected an IP address") from exc
    if _in_internal_range(site.gateway):
        out.append(Finding(
            "gateway-internal-subnet", "error",
            f"default gateway {site.gateway} lies inside the meter's internal subnet: the meter 'will not be able to "
            "communicate on the network because messages can not be routed properly'",
            internal_quote, "move the gateway (and the meter's LAN) out of 192.168.10.96-111 and 192.168.10.240-255",
        ))  # fmt: skip

    if site.proxy:
        try:
            parts = urlsplit(site.proxy if "://" in site.proxy else f"http://{site.proxy}")
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"--proxy {site.proxy!r}: malformed proxy URL: {exc}") from exc
        if not parts.hostname:
            raise ConfigError(f"--proxy {site.proxy!r}: expected http://host:port")
        if parts.scheme.startswith("socks"):
            out.append(Finding(
                "proxy-socks", "error", f"proxy {site.proxy} is a SOCKS proxy",
                "Proxy: 'Socket Secure (SOCKS) protocol is not supported'",
                "give the meter an HTTP proxy port that accepts CONNECT",
            ))  # fmt: skip
        elif parts.scheme not in ("http", ""):
            out.append(Finding(
                "proxy-scheme", "error", f"proxy {site.proxy} uses {parts.scheme}://; the meter speaks plain HTTP CONNECT to its proxy",
                "Proxy: 'tunnel network traffic to a Proxy Server's IP address and port using HTTP CONNECT Tunneling method'",
                "give the meter the proxy's plain HTTP port",
            ))  # fmt: skip
        if port is None:
            out.append(Finding(
                "proxy-port", "error", f"proxy {site.proxy} has no port",
                "Proxy step 5: 'For Proxy Port, enter the port'", "add the proxy port, e.g. http://10.0.0.5:8080",
            ))  # fmt: skip
        if parts.hostname and _in_internal_range(parts.hostname):
            out.append(Finding(
                "proxy-internal-subnet", "error",
                f"proxy address {parts.hostname} lies inside the meter's internal subnet and cannot be routed",
                internal_quote, "use a proxy address outside 192.168.10.96-111 and 192.168.10.240-255",
            ))  # fmt: skip
        if parts.hostname:
            try:
                ipaddress.ip_address(parts.hostname)
            except ValueError:
                out.append(Finding(
                    "proxy-hostname", "warning",
                    f"proxy given by name ({parts.hostname}); the meter's settings ask for the proxy's IP address",
                    "Proxy step 4: 'For Proxy Hostname enter the IP address of your proxy server'",
                    "enter the proxy's IP address on the meter",
                ))  # fmt: skip

    if site.exclusions:
        out.append(Finding(
            "exclusions", "error",
            f"exclusions configured ({', '.join(site.exclusions)}): the meter sends these through the proxy anyway",
            "Proxy, What is not supported: 'The proxy does not support allowing exceptions or exclusions. All "
            "communication must tunnel through the proxy when enabled.'",
            "allow every destination of the guide through the proxy itself (including the excluded ones); "
            "drop the exclusion list for the meter",
        ))  # fmt: skip

    if site.wifi_security is not None:
        sec = site.wifi_security.lower()
        if sec not in WIFI_SECURITY:
            raise ConfigError(f"--wifi-security {site.wifi_security!r}: expected one of {', '.join(WIFI_SECURITY)}")
        if sec == "wep":
            out.append(Finding(
                "wifi-wep", "error", "Wi-Fi secured with WEP",
                "Advanced Network Requirements: 'Due to security issues, WEP Wireless Security Protocol is not supported.'",
                "use WPA2-PSK, WPA or WPA-802.1x (LEAP)",
            ))  # fmt: skip
        elif sec == "open":
            out.append(Finding(
                "wifi-open", "warning", "open Wi-Fi (no security) is not among the protocols the guide lists",
                "Advanced Network Requirements: 'supports 802.11n WiFi WPA, WPA-2 PSK, WPA-802.1x (LEAP) protocols'",
                "use WPA2-PSK, WPA or WPA-802.1x (LEAP), or the wired LAN",
            ))  # fmt: skip

    if site.bandwidth_kbps is not None:
        if site.bandwidth_kbps < 0:
            raise ConfigError(f"--bandwidth-kbps {site.bandwidth_kbps}: expected a non-negative number")
        quote = (
            "Advanced Network Requirements: 'a minimum network bandwidth of 384 kbps (upstream and downstream) "
            "to operate, but we recommend 1 Mbit/sec for best performance'"
        )
        # The same floor as the check's verdict (docs/assumptions.md, bandwidth_floor): the catalog's.
        catalog = load_catalog()
        if site.bandwidth_kbps < catalog.min_kbps:
            out.append(Finding(
                "bandwidth-floor", "error", f"{site.bandwidth_kbps} kbit/s is below the {catalog.min_kbps} kbit/s floor", quote,
                "give the meter at least 384 kbit/s each way (1 Mbit/s recommended); do not share DSL or cellular links between meters",
            ))  # fmt: skip
        elif site.bandwidth_kbps < catalog.recommended_kbps:
            out.append(Finding(
                "bandwidth-recommended", "warning",
                f"{site.bandwidth_kbps} kbit/s meets the floor but is below the recommended 1 Mbit/s", quote,
                "1 Mbit/s each way is recommended for best performance",
            ))  # fmt: skip

    if site.ipv6:
        out.append(Finding(
            "ipv6", "warning",
            "IPv6 is on: it must be fully configured; partially enabled IPv6 'can cause the display to repeatedly reboot'",
            "Advanced Network Requirements: 'Wireless Routers that support IPv6 are supported if IPv6 has been properly configured.'",
            "either complete the IPv6 set-up (routing and DNS) or turn IPv6 off on the meter's segment",
        ))  # fmt: skip
    return out


def _split(value: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in value.replace(";", ",").split(",") if x.strip())


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("lint", help="check site network settings against the guide (no network traffic)")
    p.add_argument("--gateway", required=True, metavar="IP", help="the LAN's default gateway")
    p.add_argument("--proxy", metavar="URL", help="the proxy to be set on the meter, http://host:port")
    p.add_argument("--wifi-security", choices=WIFI_SECURITY, help="Wi-Fi security in use (omit for wired)")
    p.add_argument("--ipv6", choices=("on", "off"))
    p.add_argument("--bandwidth-kbps", type=int, metavar="N", help="the meter's bandwidth each way, kbit/s")
    p.add_argument("--exclusions", type=_split, default=(), metavar="LIST", help="comma-separated proxy exclusions planned")
    p.add_argument("--format", choices=("terminal", "json"), default="terminal")
    p.set_defaults(handler=cmd_lint)


def cmd_lint(args: argparse.Namespace) -> int:
    site = SiteSettings(
        gateway=args.gateway,
        proxy=args.proxy,
        wifi_security=args.wifi_security,
        ipv6=None if args.ipv6 is None else args.ipv6 == "on",
        bandwidth_kbps=args.bandwidth_kbps,
        exclusions=tuple(args.exclusions),
    )
    findings = lint_site(site)
    report = LintReport(findings)
    if args.format == "json":
        print(json.dumps({"ok": report.ok, "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        if not findings:
            print("site settings: no rule of the guide is broken")
        for f in findings:
            print(f"{f.level.upper():7} {f.rule}: {f.message}\n        guide: {f.guide}\n        fix: {f.remedy}")
        print("verdict: " + ("OK for the meter" if report.ok else "the meter will not work with these settings"))
    sys.stdout.flush()
    return 0 if report.ok else 1
