"""The field check's probes: the meter's traffic profile through a proxy (or none), one Result per endpoint.

`run_check` probes every catalog endpoint through the proxy as the device does (CONNECT; TLS with SNI
verified against the chosen trust; a GET inside plain-HTTP tunnels; 5938 and 5228 held open for
`hold_s`), plus the meter's direct DNS queries to 8.8.8.8 over UDP and TCP, times the bandwidth both
ways (down: a download; up: a POST to the lab cloud's sink or `upload_url`), and summarizes
(`proxy_lab.check.verdict`) into a `FieldCheckReport`. With `lab_faults` it checks the lab instead:
the lab target's proxy (`LabTarget.serve`, the same proxy a scenario runs on) with those faults, in
front of the cloud, with the lab's trust. With `direct` there is no proxy: every endpoint is opened
directly (in the lab through `proxy_lab.firewall`, whose rules are then the `lab_faults`), and the
findings are said in firewall terms (`proxy_lab.check.firewall_causes`). Probes go only to the proxy
named, or with `direct` to the guide's hosts (and, in lab mode, only to loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy_lab.advice import CAUSES
from proxy_lab.catalog import Catalog, Endpoint, load_catalog
from proxy_lab.check.firewall_causes import diagnose_direct
from proxy_lab.check.verdict import VERDICT_REDUCED, VERDICT_WORKS, CheckReport, Finding, summarize
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Result
from proxy_lab.resolver import Address, Resolver, SystemResolver, is_ip


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


@dataclass
class FieldCheckReport(CheckReport):
    """A `CheckReport` with what it does not carry itself: the upload rate (the guide's floor is
    "384 kbps (upstream and downstream)") and how the meter was connected ("proxy" or "direct")."""

    upload_kbps: float | None = None
    upload_note: str = ""
    connection: str = "proxy"

    @property
    def verdict(self) -> str:
        base = super().verdict
        if base == VERDICT_WORKS and self.upload_kbps is not None and self.upload_kbps < 384:
            return VERDICT_REDUCED
        return base

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data.update(verdict=self.verdict, upload_kbps=self.upload_kbps, upload_note=self.upload_note,
                    connection=self.connection)  # fmt: skip
        return data

    @classmethod
    def of(cls, report: CheckReport, **extra: Any) -> FieldCheckReport:
        return cls(**{f.name: getattr(report, f.name) for f in dataclasses.fields(report) if f.init}, **extra)


@dataclass(frozen=True)
class Measured:
    """One way of the bandwidth: kbit/s (None when not measured) and how it was measured."""

    kbps: float | None
    note: str


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
    direct: bool = False,
    hold_s: float | None = None,
    upload_url: str | None = None,
    upload_bytes: int = 48 * 1024,
) -> FieldCheckReport:
    """Probe the proxy at `proxy_url` (or, with `lab_faults`, the lab proxy with those faults; the
    URL then gives only its user) and summarize. With `direct` there is no proxy: the meter connects
    to every endpoint itself, in the lab through the lab firewall with `lab_faults` as its rules
    (`proxy_lab.firewall`). `hold_s` holds the 5938 and 5228 sessions quiet that long; the upload
    is timed on the lab's sink, or in the field on `upload_url` when given. ConfigError for bad input
    or an unreachable proxy; SetupError when the lab cannot start."""
    from proxy_lab.device import Device, DeviceSettings, ProxySettings
    from proxy_lab.pki import PKI
    from proxy_lab.targets.url import parse_proxy_url

    catalog = load_catalog()
    started = time.monotonic()
    # Bad URLs are said before anything is probed (a field check would otherwise probe every host first).
    if bandwidth_url:
        _url_endpoint("--bandwidth-url", bandwidth_url, "bulk_get")
    if upload_url:
        _url_endpoint("--upload-url", upload_url, "upload")
    user = pw = None
    host, port = "", 0
    if proxy_url and not direct:
        host, port, user, pw = parse_proxy_url(proxy_url)
    hold = 0.0 if hold_s is None else hold_s

    def settings(proxy: ProxySettings | None) -> DeviceSettings:
        return DeviceSettings(
            model=model, proxy=proxy, connect_timeout_s=timeout_s, read_timeout_s=timeout_s,
            concurrency=concurrency, max_probe_s=max(30.0, timeout_s * 6) + hold,
            teamviewer_hold_s=0.5 if hold_s is None else hold_s, mtalk_hold_s=hold, upload_bytes=upload_bytes,
        )  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="proxy-lab-check-") as tmp:
        journal = Path(tmp) / "journal.sqlite3"
        if lab_faults is not None:
            from proxy_lab.cloud import Cloud
            from proxy_lab.lab import Lab

            pki = PKI.load(certs_dir)
            # The cloud's own idle timeout must outlast the hold, or it would cut the held sessions itself.
            lab = Lab(pki, catalog, Cloud(pki, catalog, idle_timeout_s=max(30.0, hold + 30.0)))
            async with lab, _lab_path(lab, lab_faults, direct, user, pw) as (proxy, resolver, label):
                ctx = lab.pki.device_context() if trust == "lab" else trust_context(trust, certs_dir)
                device = Device(
                    settings(proxy), lab.pki, resolver, journal_path=journal, catalog=catalog, tls_context=ctx,
                )  # fmt: skip
                # The lab's cloud speaks the meter's own exchanges: run them, not just the field probes.
                results = await probe_all(device, catalog.endpoints(model), on_progress)
                down = await lab_bandwidth(device, catalog)
                up = await lab_upload(device, catalog)
                device.close()
        else:
            proxy = None
            if not direct:
                await preflight(host, port, timeout_s)
                proxy = ProxySettings(host, port, user, pw)
            device = Device(
                settings(proxy), PKI.load(certs_dir), FieldResolver(resolve, dns_server), journal_path=journal,
                catalog=catalog, tls_context=trust_context(trust, certs_dir), field=True,
            )  # fmt: skip
            results = await probe_all(device, field_endpoints(catalog, model), on_progress)
            via = "through the proxy" if proxy else "directly"
            down = Measured(None, f"not measured: give --bandwidth-url URL (a large file reachable {via}) to measure")
            up = Measured(None, f"not measured: give --upload-url URL (an endpoint that accepts a POST {via})")
            if bandwidth_url:
                down = await _field_bandwidth(device, bandwidth_url)
            if upload_url:
                up = await _field_upload(device, upload_url)
            device.close()
            label = "no proxy: the meter connects to each host directly" if direct else f"{host}:{port}"
    base = summarize(label, model, catalog, results)
    if direct:
        base.findings = diagnose_direct(results)
    note = down.note + (f"; upload: {up.kbps:.0f} kbit/s, {up.note}" if up.kbps is not None else f"; upload {up.note}")
    report = FieldCheckReport.of(base, upload_kbps=up.kbps, upload_note=up.note, connection="direct" if direct else "proxy")
    report.bandwidth_kbps, report.bandwidth_note = down.kbps, note
    slow = [f"{w} {m.kbps:.0f} kbit/s" for w, m in (("download", down), ("upload", up)) if m.kbps is not None and m.kbps < catalog.min_kbps]
    if slow and not any(f.cause.id == "throttle" for f in report.findings):
        report.findings.append(Finding(CAUSES["throttle"], ["bandwidth"], [], f"{' and '.join(slow)} measured"))
    report.elapsed_s = time.monotonic() - started
    return report


@contextlib.asynccontextmanager
async def _lab_path(
    lab: Any, faults: list[tuple[str, dict[str, Any]]], direct: bool, user: str | None, pw: str | None
) -> AsyncIterator[tuple[Any, Resolver, str]]:
    """What stands between the meter and the lab cloud: the lab proxy with `faults`, or with
    `direct` no proxy and the lab firewall with `faults` as its rules. Yields (the meter's proxy
    settings or None, the meter's resolver, the report's label)."""
    from proxy_lab.device import ProxySettings

    named = f" with {', '.join(n for n, _ in faults)}" if faults else ""
    if direct:
        from proxy_lab.firewall import FirewallRules, LabFirewall

        async with LabFirewall(FirewallRules.from_faults(faults), lab.resolver, pki=lab.pki) as firewall:
            yield None, firewall.resolver, f"no proxy: the meter connects directly, through the lab firewall{named}"
        return
    from proxy_lab.scenarios import FaultSpec, ProxySpec
    from proxy_lab.targets.lab import LabTarget

    users = {user: pw} if user is not None and pw is not None else {}
    spec = ProxySpec(users=users, faults=tuple(FaultSpec(n, s) for n, s in faults))
    async with LabTarget().serve(spec, lab, where=None) as proxy:
        yield ProxySettings(proxy.host, proxy.port, user, pw), lab.resolver, f"lab proxy {proxy.host}:{proxy.port}{named}"


async def probe_all(device: Any, endpoints: list[Endpoint], on_progress: Callable[[Result], None] | None) -> list[Result]:
    gate = asyncio.Semaphore(device.settings.concurrency)

    async def one(e: Endpoint) -> Result:
        async with gate:
            r: Result = await device.probe(e)
        if on_progress:
            on_progress(r)
        return r

    return list(await asyncio.gather(*(one(e) for e in endpoints)))


def _via(device: Any) -> str:
    return "through the proxy" if device.settings.proxy is not None else "directly"


def _download_endpoint(catalog: Catalog) -> Endpoint:
    return next(e for e in catalog.services["downloads"].endpoints if e.exchange == "download")


async def lab_bandwidth(device: Any, catalog: Catalog) -> Measured:
    """Throughput of a signed download from the lab's download server."""
    ep = _download_endpoint(catalog)
    r: Result = await device.probe(ep)
    if r.evidence.kbps is None:
        return Measured(None, f"not measured: the test download failed ({r.outcome.value}: {r.detail})")
    return Measured(r.evidence.kbps, f"download of {r.evidence.bytes_received} bytes from {ep.host} {_via(device)}")


async def lab_upload(device: Any, catalog: Catalog) -> Measured:
    """Throughput of a POST to the lab cloud's upload sink, on the download server's host."""
    from proxy_lab.cloud.routes import SINK_PATH

    ep = dataclasses.replace(_download_endpoint(catalog), path=SINK_PATH, exchange="upload")
    return await _measure(device, ep, "the test upload failed")


def _url_endpoint(option: str, url: str, exchange: str) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option} {url!r}: expected an http:// or https:// URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Endpoint("bandwidth", parts.scheme, parts.hostname, port, path, exchange)


async def _measure(device: Any, ep: Endpoint, failed: str) -> Measured:
    r: Result = await device.probe(ep)
    if r.evidence.kbps is None:
        return Measured(None, f"not measured: {failed} ({r.outcome.value}: {r.detail})")
    if ep.exchange == "upload":
        return Measured(r.evidence.kbps, f"POST of {device.settings.upload_bytes} bytes to {ep.url} {_via(device)}")
    return Measured(r.evidence.kbps, f"GET {ep.url} {_via(device)} ({r.evidence.bytes_received} bytes)")


async def _field_bandwidth(device: Any, url: str) -> Measured:
    return await _measure(device, _url_endpoint("--bandwidth-url", url, "bulk_get"), "the download failed")


async def _field_upload(device: Any, url: str) -> Measured:
    return await _measure(device, _url_endpoint("--upload-url", url, "upload"), "the upload failed")
