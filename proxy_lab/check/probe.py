"""The field check's probes: the meter's traffic profile through a proxy, one Result per endpoint.

`run_check` probes every catalog endpoint through the proxy as the device does (CONNECT; TLS with SNI
verified against the chosen trust; a GET inside plain-HTTP tunnels; a TCP open for 5938), plus the
meter's direct DNS queries to 8.8.8.8 over UDP and TCP, measures bandwidth, and summarizes
(`proxy_lab.check.verdict`). With `lab_faults` it checks the lab instead: the lab target's proxy
(`LabTarget.serve`, the same proxy a scenario runs on) with those faults, in front of the cloud, with
the lab's trust. Probes go only to the proxy named (and, in lab mode, only to loopback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy_lab.advice import CAUSES
from proxy_lab.catalog import Catalog, Endpoint, load_catalog
from proxy_lab.check.verdict import CheckReport, Finding, summarize
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Result
from proxy_lab.resolver import Address, SystemResolver, is_ip


class FieldResolver:
    """The meter's own lookups in the field: IP literals as they are, `--resolve` entries, then the system.

    `dns_server` redirects the meter's direct DNS probes (8.8.8.8:53 in the guide) elsewhere.
    """

    def __init__(self, overrides: dict[str, str], dns_server: Address | None = None) -> None:
        self.overrides = {k.lower(): v for k, v in overrides.items()}
        self.dns_server = dns_server

    async def resolve(self, host: str, port: int) -> list[Address]:
        if self.dns_server is not None and (host, port) == ("8.8.8.8", 53):
            return [self.dns_server]
        if is_ip(host):
            return [(host, port)]
        if host.lower() in self.overrides:
            return [(self.overrides[host.lower()], port)]
        return await SystemResolver().resolve(host, port)


def trust_context(trust: str, certs_dir: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust == "public":
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())
    elif trust == "lab":
        from proxy_lab.pki import PKI

        ctx.load_verify_locations(cafile=str(PKI.load(certs_dir).pb_root.cert))
    else:
        try:
            ctx.load_verify_locations(cafile=trust)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--trust {trust!r}: cannot load CA certificates from it: {exc}") from exc
    return ctx


def field_endpoints(catalog: Catalog, model: str) -> list[Endpoint]:
    """The catalog's endpoints with the field probe in place of the lab's XML exchanges.

    Real back ends do not speak the lab's XML, so TLS endpoints are proven by a verified handshake
    (and any HTTP answer), plain-HTTP ones by the origin answering, 5938 by an open tunnel; the
    connectivity check keeps Android's strict 204 rule and DNS its direct query.
    """
    keep = {"generate_204", "dns"}
    return [e if e.exchange in keep else dataclasses.replace(e, exchange="reach") for e in catalog.endpoints(model)]


async def preflight(host: str, port: int, timeout_s: float) -> None:
    """One TCP connect to the proxy, so an unreachable proxy is said in one line before anything else."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError as exc:
        raise ConfigError(f"proxy {host}:{port} unreachable: no answer to a TCP connect within {timeout_s:g} s") from exc
    except OSError as exc:
        raise ConfigError(f"proxy {host}:{port} unreachable: {exc.strerror or exc}") from exc
    writer.close()


async def run_check(
    *,
    proxy_url: str | None,
    model: str,
    trust: str,
    timeout_s: float,
    concurrency: int,
    lab_faults: list[tuple[str, dict[str, Any]]] | None,
    resolve: dict[str, str],
    certs_dir: Path | None,
    bandwidth_url: str | None,
    on_progress: Callable[[Result], None] | None = None,
    dns_server: Address | None = None,
) -> CheckReport:
    """Probe the proxy at `proxy_url` (or, with `lab_faults`, the lab proxy with those faults; the
    URL then gives only its user) and summarize. ConfigError for bad input or an unreachable proxy;
    SetupError when the lab cannot start."""
    from proxy_lab.device import Device, DeviceSettings, ProxySettings
    from proxy_lab.pki import PKI
    from proxy_lab.targets.url import parse_proxy_url

    catalog = load_catalog()
    started = time.monotonic()
    user = pw = None
    if proxy_url:
        host, port, user, pw = parse_proxy_url(proxy_url)

    def settings(host: str, port: int) -> DeviceSettings:
        return DeviceSettings(
            model=model, proxy=ProxySettings(host, port, user, pw), connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s, concurrency=concurrency, max_probe_s=max(30.0, timeout_s * 6),
        )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="proxy-lab-check-") as tmp:
        journal = Path(tmp) / "journal.sqlite3"
        if lab_faults is not None:
            from proxy_lab.lab import Lab
            from proxy_lab.scenarios import FaultSpec, ProxySpec
            from proxy_lab.targets.lab import LabTarget

            users = {user: pw} if user is not None and pw is not None else {}
            spec = ProxySpec(users=users, faults=tuple(FaultSpec(n, s) for n, s in lab_faults))
            async with Lab.create(certs_dir, catalog) as lab, LabTarget().serve(spec, lab, where=None) as proxy:
                ctx = lab.pki.device_context() if trust == "lab" else trust_context(trust, certs_dir)
                device = Device(
                    settings(proxy.host, proxy.port), lab.pki, lab.resolver, journal_path=journal, catalog=catalog,
                    tls_context=ctx,
                )  # fmt: skip
                # The lab's cloud speaks the meter's own exchanges: run them, not just the field probes.
                results = await _probe_all(device, catalog.endpoints(model), on_progress)
                kbps, note = await _lab_bandwidth(device, catalog)
                device.close()
            label = f"lab proxy {proxy.host}:{proxy.port}" + (f" with {', '.join(n for n, _ in lab_faults)}" if lab_faults else "")
        else:
            assert proxy_url is not None
            await preflight(host, port, timeout_s)
            device = Device(
                settings(host, port), PKI.load(certs_dir), FieldResolver(resolve, dns_server), journal_path=journal,
                catalog=catalog, tls_context=trust_context(trust, certs_dir), field=True,
            )  # fmt: skip
            results = await _probe_all(device, field_endpoints(catalog, model), on_progress)
            kbps, note = (None, "not measured: give --bandwidth-url URL (a large file behind the proxy) to measure")
            if bandwidth_url:
                kbps, note = await _field_bandwidth(device, bandwidth_url)
            device.close()
            label = f"{host}:{port}"
    report = summarize(label, model, catalog, results)
    report.bandwidth_kbps, report.bandwidth_note = kbps, note
    if kbps is not None and kbps < catalog.min_kbps and not any(f.cause.id == "throttle" for f in report.findings):
        report.findings.append(Finding(CAUSES["throttle"], ["bandwidth"], [], f"{kbps:.0f} kbit/s measured"))
    report.elapsed_s = time.monotonic() - started
    return report


async def _probe_all(device: Any, endpoints: list[Endpoint], on_progress: Callable[[Result], None] | None) -> list[Result]:
    gate = asyncio.Semaphore(device.settings.concurrency)

    async def one(e: Endpoint) -> Result:
        async with gate:
            r: Result = await device.probe(e)
        if on_progress:
            on_progress(r)
        return r

    return list(await asyncio.gather(*(one(e) for e in endpoints)))


async def _lab_bandwidth(device: Any, catalog: Catalog) -> tuple[float | None, str]:
    """Throughput of a signed download from the lab's download server, through the proxy."""
    ep = next(e for e in catalog.services["downloads"].endpoints if e.exchange == "download")
    r: Result = await device.probe(ep)
    if r.evidence.kbps is None:
        return None, f"not measured: the test download failed ({r.outcome.value}: {r.detail})"
    return r.evidence.kbps, f"download of {r.evidence.bytes_received} bytes from {ep.host} through the proxy"


async def _field_bandwidth(device: Any, url: str) -> tuple[float | None, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--bandwidth-url {url!r}: expected an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    ep = Endpoint("bandwidth", parts.scheme, parts.hostname, port, path, "bulk_get")
    r: Result = await device.probe(ep)
    if r.evidence.kbps is None:
        return None, f"not measured: {r.outcome.value}: {r.detail}"
    return r.evidence.kbps, f"GET {url} through the proxy ({r.evidence.bytes_received} bytes)"
