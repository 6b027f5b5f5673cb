"""The field check: replay the meter's traffic profile through a real proxy and say what it breaks.

`proxy-lab check --proxy http://[user:pass@]host:port` probes every catalog endpoint through the
proxy as the device does (CONNECT; TLS with SNI verified against the chosen trust; a GET inside
plain-HTTP tunnels; a TCP open for 5938), plus the meter's direct DNS queries to 8.8.8.8 over UDP
and TCP. It then diagnoses each failing service (the cause, named as the proxy feature that
produces it, and a remedy), measures bandwidth through the proxy, and gives one verdict:
the meter will work (exit 0), works with reduced support (1), or will not work (1).
`--lab [--fault NAME ...]` runs the same check against the lab (cloud hosts, lab trust), so anyone
can try it without a corporate network. Probes go only to the proxy named (and, in lab mode, only
to loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy_lab.advice import CAUSES, Cause, Scope, cause_of, guide_rule, remedy
from proxy_lab.advice import compact_hosts as compact_hosts  # re-exported: it was defined here
from proxy_lab.catalog import MODELS, Catalog, Endpoint, load_catalog
from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome, Result, worst
from proxy_lab.resolver import Address, SystemResolver, is_ip

VERDICT_WORKS = "the meter will work: every required service passes"
VERDICT_REDUCED = "the meter will work with reduced support"
VERDICT_FAILS = "the meter will NOT work"


# -- diagnosis -----------------------------------------------------------------------------------
# The causes, their one remedy sentence each and `cause_of` live in proxy_lab.advice, shared with the reports.
@dataclass
class Finding:
    cause: Cause
    services: list[str] = field(default_factory=list)
    endpoints: list[str] = field(default_factory=list)
    evidence: str = ""
    results: list[Result] = field(default_factory=list, repr=False)  # the failing results grouped here

    def line(self) -> str:
        return f"{self.cause.title}: {specific_remedy(self)}"


def _page_title(r: Result) -> str:
    for line in r.evidence.transcript:
        if "title" in line.lower() and "block" in line.lower():
            return line
    return r.detail if "title" in r.detail else ""


def diagnose(results: Sequence[Result]) -> list[Finding]:
    """Group failing results by cause, most important first."""
    findings: dict[str, Finding] = {}
    for r in results:
        if r.outcome == Outcome.PASS:
            continue
        cid, seen = cause_of(r)
        f = findings.setdefault(cid, Finding(CAUSES[cid], evidence=seen))
        if r.service not in f.services:
            f.services.append(r.service)
        f.endpoints.append(r.endpoint)
        f.results.append(r)
    order = list(CAUSES)
    return sorted(findings.values(), key=lambda f: order.index(f.cause.id))


def specific_remedy(f: Finding) -> str:
    """The finding's remedy: its cause's one sentence in `CAUSES`, said for every host and port it groups."""
    scope = Scope.of(f.results) if f.results else Scope.of_urls(f.endpoints, f.evidence)
    return f.cause.remedy_for(scope)


# -- verdict -------------------------------------------------------------------------------------
@dataclass
class CheckReport:
    proxy: str
    model: str
    results: list[Result]
    services: dict[str, Outcome]
    required: dict[str, bool]
    findings: list[Finding]
    bandwidth_kbps: float | None = None
    bandwidth_note: str = ""
    elapsed_s: float = 0.0

    @property
    def verdict(self) -> str:
        if any(not self.services[s].ok for s, req in self.required.items() if req and s in self.services):
            return VERDICT_FAILS
        if any(o != Outcome.PASS for o in self.services.values()) or (
            self.bandwidth_kbps is not None and self.bandwidth_kbps < 384
        ):
            return VERDICT_REDUCED
        return VERDICT_WORKS

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == VERDICT_WORKS else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "proxy": self.proxy,
            "model": self.model,
            "verdict": self.verdict,
            "services": {s: {"outcome": o.value, "required": self.required[s]} for s, o in self.services.items()},
            "findings": [
                {"cause": f.cause.id, "title": f.cause.title, "services": f.services, "endpoints": f.endpoints,
                 "evidence": f.evidence, "remedy": specific_remedy(f)}
                for f in self.findings
            ],
            "bandwidth_kbps": self.bandwidth_kbps,
            "bandwidth_note": self.bandwidth_note,
            "results": [
                {**r.to_dict(), "guide_rule": guide_rule(r), "remedy": remedy(r)} for r in self.results
            ],
            "elapsed_s": round(self.elapsed_s, 3),
        }


def summarize(proxy: str, model: str, catalog: Catalog, results: list[Result]) -> CheckReport:
    by_service: dict[str, list[Outcome]] = {}
    for r in results:
        by_service.setdefault(r.service, []).append(r.outcome)
    services = {s: worst(o) for s, o in by_service.items()}
    required = {s.name: s.required for s in catalog.for_model(model)}
    return CheckReport(proxy, model, results, services, required, diagnose(results))


# -- probing -------------------------------------------------------------------------------------
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
    from proxy_lab.device import Device, DeviceSettings, ProxySettings
    from proxy_lab.pki import PKI
    from proxy_lab.targets.url import parse_proxy_url

    catalog = load_catalog()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="proxy-lab-check-") as tmp:
        journal = Path(tmp) / "journal.sqlite3"
        if lab_faults is not None:
            from proxy_lab.lab import Lab
            from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault

            async with Lab.create(certs_dir, catalog) as lab:
                faults = [make_fault(n, s) for n, s in lab_faults]
                for f in faults:
                    f.attach(lab)
                user = pw = None
                users: dict[str, str] = {}
                if proxy_url:
                    _, _, user, pw = parse_proxy_url(proxy_url)
                    if user is not None and pw is not None:
                        users = {user: pw}
                async with LabProxy(ProxyConfig(users=users, faults=faults), lab.resolver) as proxy:
                    host, port = proxy.address
                    settings = DeviceSettings(
                        model=model, proxy=ProxySettings(host, port, user, pw), connect_timeout_s=timeout_s,
                        read_timeout_s=timeout_s, concurrency=concurrency, max_probe_s=max(30.0, timeout_s * 6),
                    )  # fmt: skip
                    ctx = lab.pki.device_context() if trust == "lab" else trust_context(trust, certs_dir)
                    device = Device(settings, lab.pki, lab.resolver, journal_path=journal, catalog=catalog, tls_context=ctx)
                    # The lab's cloud speaks the meter's own exchanges: run them, not just the field probes.
                    results = await _probe_all(device, catalog.endpoints(model), on_progress)
                    kbps, note = await _lab_bandwidth(device, catalog)
                    device.close()
                label = f"lab proxy {host}:{port}" + (f" with {', '.join(n for n, _ in lab_faults)}" if lab_faults else "")
        else:
            assert proxy_url is not None
            host, port, user, pw = parse_proxy_url(proxy_url)
            await preflight(host, port, timeout_s)
            settings = DeviceSettings(
                model=model, proxy=ProxySettings(host, port, user, pw), connect_timeout_s=timeout_s,
                read_timeout_s=timeout_s, concurrency=concurrency, max_probe_s=max(30.0, timeout_s * 6),
            )  # fmt: skip
            pki = PKI.load(certs_dir)
            resolver = FieldResolver(resolve, dns_server)
            device = Device(
                settings, pki, resolver, journal_path=journal, catalog=catalog,
                tls_context=trust_context(trust, certs_dir), field=True,
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


# -- output --------------------------------------------------------------------------------------
def render_terminal(report: CheckReport) -> str:
    lines = [f"proxy-lab check: {report.proxy}, model {report.model}, {len(report.results)} endpoints in {report.elapsed_s:.1f} s", ""]
    for service, outcome in report.services.items():
        level = "required" if report.required.get(service) else "recommended"
        lines.append(f"  {outcome.symbol} {service:<20} {outcome.value:<18} ({level})")
    lines.append("")
    if report.findings:
        lines.append("What breaks, and what to change on the proxy:")
        for f in report.findings:
            lines.append(f"  - {f.cause.title} [{f.cause.id}] ({', '.join(f.services)})")
            lines.append(f"      seen: {f.evidence}")
            lines.append(f"      fix:  {specific_remedy(f)}")
        lines.append("")
    if report.bandwidth_kbps is not None:
        k = report.bandwidth_kbps
        judgement = "below the 384 kbit/s floor" if k < 384 else ("below the recommended 1 Mbit/s" if k < 1000 else "meets the recommended 1 Mbit/s")
        lines.append(f"bandwidth: {k:.0f} kbit/s, {judgement} ({report.bandwidth_note})")
    else:
        lines.append(f"bandwidth: {report.bandwidth_note}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines) + "\n"


def render_markdown(report: CheckReport) -> str:
    out = [f"# proxy-lab check: {report.proxy}", "", f"**Verdict:** {report.verdict}", "",
           "| service | level | outcome |", "|---|---|---|"]  # fmt: skip
    for s, o in report.services.items():
        out.append(f"| {s} | {'required' if report.required.get(s) else 'recommended'} | {o.symbol} {o.value} |")
    if report.findings:
        out += ["", "## Findings", ""]
        for f in report.findings:
            out.append(f"- **{f.cause.title}** ({', '.join(f.services)}): seen `{f.evidence}`. Fix: {specific_remedy(f)}")
    return "\n".join(out) + "\n"


def _dns_server_arg(value: str) -> Address:
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "53")
    if not is_ip(host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--dns-server {value!r}: expected IP[:PORT]")
    return host, int(port)


def _resolve_arg(value: str) -> tuple[str, str]:
    host, sep, ip = value.partition("=")
    if not sep or not host or not is_ip(ip):
        raise argparse.ArgumentTypeError(f"--resolve {value!r}: expected HOST=IP")
    return host, ip


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from proxy_lab.cli import parse_fault

    p = sub.add_parser(
        "check",
        help="probe a real proxy with the meter's traffic profile and say what it breaks",
        description=(
            "Replay the SendPro traffic profile through your proxy toward the guide's real hosts. "
            "Example: proxy-lab check --proxy http://meter:secret@10.0.0.5:8080 --model sendpro-plus. "
            "Read the result per service (required/recommended), then the findings: each names what the "
            "proxy did and what to change. Exit 0 only when the meter will work. "
            "Without a corporate network: proxy-lab check --lab --fault allow_ports:preset=ssl_ports_only"
        ),
    )
    p.add_argument("--proxy", metavar="URL", help="http://[user:pass@]host:port of the proxy to check")
    p.add_argument("--model", choices=MODELS, default="sendpro-plus")
    p.add_argument("--trust", default=None, metavar="public|lab|FILE",
                   help="CA roots the TLS chains are verified against (default: public, or lab with --lab)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds per connect and per read")
    p.add_argument("--concurrency", type=int, default=16, metavar="N", help="probes in flight at once")
    p.add_argument("--lab", action="store_true", help="check the lab proxy (cloud hosts on loopback) instead")
    p.add_argument("--fault", type=parse_fault, action="append", default=[], metavar="NAME[:key=value,...]",
                   help="with --lab: a fault for the lab proxy (see `proxy-lab faults`)")  # fmt: skip
    p.add_argument("--resolve", type=_resolve_arg, action="append", default=[], metavar="HOST=IP",
                   help="use IP for HOST when the meter itself resolves it (the proxy's name)")  # fmt: skip
    p.add_argument("--dns-server", type=_dns_server_arg, default=None, metavar="IP[:PORT]",
                   help="send the meter's direct DNS probes here instead of 8.8.8.8:53")  # fmt: skip
    p.add_argument("--bandwidth-url", metavar="URL", help="a large file to download through the proxy to measure bandwidth")
    p.add_argument("--format", choices=("terminal", "json", "markdown"), default="terminal")
    p.add_argument("--output", "-o", metavar="PATH")
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from proxy_lab.targets.url import parse_proxy_url

    if not args.lab and not args.proxy:
        raise ConfigError("check: give --proxy http://[user:pass@]host:port (or --lab to try the lab)")
    if args.fault and not args.lab:
        raise ConfigError("check: --fault applies to the lab proxy only; add --lab")
    if args.proxy:
        parse_proxy_url(args.proxy)  # malformed or SOCKS: one line, exit 2
    if args.timeout <= 0 or args.concurrency < 1:
        raise ConfigError("check: --timeout must be > 0 and --concurrency >= 1")
    trust = args.trust or ("lab" if args.lab else "public")
    certs = Path(args.certs) if getattr(args, "certs", None) else None
    console = Console(stderr=True)
    progress = Progress(TextColumn("probing"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                        console=console, transient=True, disable=not console.is_terminal)  # fmt: skip
    total = len(load_catalog().endpoints(args.model))
    with progress:
        task = progress.add_task("probes", total=total)
        report = asyncio.run(
            run_check(
                proxy_url=args.proxy, model=args.model, trust=trust, timeout_s=args.timeout,
                concurrency=args.concurrency, lab_faults=args.fault if args.lab else None,
                resolve=dict(args.resolve), certs_dir=certs, bandwidth_url=args.bandwidth_url,
                on_progress=lambda _r: progress.advance(task), dns_server=args.dns_server,
            )
        )  # fmt: skip
    if args.format == "json":
        text = json.dumps(report.to_dict(), indent=2) + "\n"
    elif args.format == "markdown":
        text = render_markdown(report)
    else:
        text = render_terminal(report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}; verdict: {report.verdict}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return report.exit_code
