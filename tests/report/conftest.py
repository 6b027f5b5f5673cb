"""Hand-built scenario runs for the report tests: no lab, no sockets, evidence as the device records it.

`build_run` makes a ScenarioRun from a scenario id, a list of Results and the expectation; the
fixtures give a run for each thing a report must show: all passing, TLS inspection with both chains,
a Squid refusal that breaks the expectation, a setup failure, a skipped run, and evidence that
tries to break out of HTML, XML and Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace

import pytest

from proxy_lab.outcomes import CertSummary, Evidence, Outcome, Result, service_outcomes
from proxy_lab.runs import ScenarioRun
from proxy_lab.scenarios import CloudSpec, DeviceSpec, Expectation, ProxySpec, Scenario

PB_ROOT = "CN=proxy-lab PB Root (lab only),OU=proxy-lab PB Root (lab only),O=proxy-lab"
CORP_CA = "CN=proxy-lab Corp Inspection CA - LAB ONLY - never install,O=proxy-lab"
HOSTILE = '<script>alert("x")</script> ]]> | **bold** & "quoted" \x00\x1b[31m'


def make_scenario(sid: str, *, title: str = "", lesson: str = "", remedy: str = "", section: str = "Proxy") -> Scenario:
    return Scenario(
        id=sid,
        title=title or f"scenario {sid}",
        guide_section=section,
        lesson=lesson or f"Lesson of {sid}. Second sentence.",
        remedy=remedy,
        path=None,
        proxy=ProxySpec(),
        device=DeviceSpec(),
        cloud=CloudSpec(),
        expect=Expectation(),
    )


def build_run(
    sid: str,
    results: Sequence[Result],
    expected: Mapping[str, Outcome | tuple[Outcome, ...]],
    *,
    target: str = "lab",
    setup_error: str | None = None,
    skipped: str | None = None,
    **scenario_kwargs: str,
) -> ScenarioRun:
    run = ScenarioRun(make_scenario(sid, **scenario_kwargs), target)
    run.results = [Result(sid, r.service, r.endpoint, r.outcome, r.detail, r.evidence, r.elapsed_s) for r in results]
    run.expected = {s: (o,) if isinstance(o, Outcome) else tuple(o) for s, o in expected.items()}
    run.observed = service_outcomes(run.results)
    run.setup_error = setup_error
    run.skipped = skipped
    run.elapsed_s = 1.25
    return run


def ok(service: str, endpoint: str, *, sent: int = 310, received: int = 1840) -> Result:
    host = endpoint.split("/")[2]
    authority = host if ":" in host else f"{host}:{443 if endpoint.startswith('https') else 80}"
    ev = Evidence(
        transcript=[
            f"> CONNECT {authority} HTTP/1.1",
            f"> Host: {authority}",
            "< HTTP/1.1 200 Connection established",
            "! TLS 1.3 with the PB root: verified" if endpoint.startswith("https") else "! plain HTTP inside the tunnel",
        ],
        connect_status=200,
        connect_reason="Connection established",
        chain_shown=chain_expected(host.split(":")[0]) if endpoint.startswith("https") else [],
        chain_expected=chain_expected(host.split(":")[0]) if endpoint.startswith("https") else [],
        http_status=200,
        bytes_sent=sent,
        bytes_received=received,
        kbps=2400.0,
    )
    return Result("", service, endpoint, Outcome.PASS, "200 OK", ev, 0.042)


def chain_shown(host: str) -> list[CertSummary]:
    return [
        CertSummary(f"CN={host}", CORP_CA, "AB:CD:" + "12:" * 29 + "EF", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        CertSummary(CORP_CA, CORP_CA, "99:88:" + "77:" * 29 + "66", "2025-01-01T00:00:00Z", "2035-01-01T00:00:00Z"),
    ]


def chain_expected(host: str) -> list[CertSummary]:
    return [
        CertSummary(f"CN={host}", PB_ROOT, "01:23:" + "45:" * 29 + "67", "2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        CertSummary(PB_ROOT, PB_ROOT, "FE:DC:" + "BA:" * 29 + "98", "2025-01-01T00:00:00Z", "2035-01-01T00:00:00Z"),
    ]


def intercepted(service: str, host: str) -> Result:
    ev = Evidence(
        transcript=[
            f"> CONNECT {host}:443 HTTP/1.1",
            f"> Host: {host}:443",
            "< HTTP/1.1 200 Connection established",
            f"! TLS handshake with SNI {host}",
            f"! certificate issued by {CORP_CA}: not anchored in the PB root",
            "! sent alert unknown_ca and closed",
        ],
        connect_status=200,
        connect_reason="Connection established",
        tls_error="certificate verify failed: unable to get local issuer certificate",
        tls_alert="unknown_ca",
        chain_shown=chain_shown(host),
        chain_expected=chain_expected(host),
        bytes_sent=517,
        bytes_received=2301,
    )
    return Result("", service, f"https://{host}/", Outcome.TLS_INTERCEPTED, f"TLS to {host} re-signed by the inspection CA", ev, 0.12)


def squid_refused(service: str, endpoint: str, port: int) -> Result:
    host = endpoint.split("/")[2].split(":")[0]
    ev = Evidence(
        transcript=[
            f"> CONNECT {host}:{port} HTTP/1.1",
            f"> Host: {host}:{port}",
            "< HTTP/1.1 403 Forbidden",
            "< Server: squid/6.13",
            "< X-Squid-Error: ERR_ACCESS_DENIED 0",
            "< Content-Length: 3424",
        ],
        connect_status=403,
        connect_reason="Forbidden",
        connect_headers=[("Server", "squid/6.13"), ("X-Squid-Error", "ERR_ACCESS_DENIED 0")],
        bytes_sent=88,
        bytes_received=3650,
    )
    return Result("", service, endpoint, Outcome.REFUSED, f"proxy refused CONNECT {host}:{port}: 403 Forbidden", ev, 0.01)


def make_baseline_run() -> ScenarioRun:
    return build_run(
        "baseline",
        [
            ok("distributor", "http://distservp1.pb.com/csd/dstproduct"),
            ok("distributor", "https://distservp1.pb.com/csd/dstproduct"),
            ok("funds", "https://decometlb20.pb.com/"),
            ok("funds", "https://cometservp1.pb.com/"),
        ],
        {"distributor": Outcome.PASS, "funds": Outcome.PASS},
        title="Open proxy, no authentication",
    )


def make_tls_run() -> ScenarioRun:
    return build_run(
        "tls-inspection",
        [
            ok("distributor", "http://distservp1.pb.com/csd/dstproduct"),
            intercepted("distributor", "distservp1.pb.com"),
            intercepted("funds", "decometlb20.pb.com"),
            intercepted("funds", "cometservp1.pb.com"),
        ],
        {"distributor": Outcome.TLS_INTERCEPTED, "funds": Outcome.TLS_INTERCEPTED},
        title="SSL inspection re-signs every TLS connection with the corporate CA",
        lesson="The meter trusts only the PB root, so a re-signed certificate ends the handshake. Refills, audits and uploads stop.",
        remedy="exempt the pb.com hosts from SSL inspection (splice by SNI)",
        section="URL Information",
    )


def make_squid_run() -> ScenarioRun:
    return build_run(
        "squid-stock",
        [
            squid_refused("distributor", "http://distservp1.pb.com/csd/dstproduct", 80),
            ok("distributor", "https://distservp1.pb.com/csd/dstproduct"),
            squid_refused("remote_access", "tcp://master.teamviewer.com:5938/", 5938),
            ok("funds", "https://decometlb20.pb.com/"),
        ],
        {"distributor": Outcome.PASS, "funds": Outcome.PASS, "remote_access": Outcome.PASS},
        title="A stock Squid: CONNECT only to SSL_ports",
        section="Ports",
    )


def make_setup_run() -> ScenarioRun:
    return build_run(
        "squid-real",
        [],
        {"distributor": Outcome.PASS, "funds": Outcome.PASS},
        target="squid",
        setup_error="squid did not start: /usr/sbin/squid: No such file or directory",
    )


def make_skipped_run() -> ScenarioRun:
    return build_run(
        "tls-inspection",
        [],
        {"distributor": Outcome.TLS_INTERCEPTED},
        target="tinyproxy",
        skipped="tinyproxy cannot inspect TLS",
    )


def make_hostile_run() -> ScenarioRun:
    r = squid_refused("online_help", "https://help.pb.com/", 443)
    r.detail = HOSTILE
    r.evidence.transcript.append(f"< {HOSTILE}")
    r.evidence.connect_headers.append(("X-Evil", HOSTILE))
    r.evidence.connect_reason = HOSTILE
    return build_run("hostile", [r], {"online_help": Outcome.PASS}, title=f"title {HOSTILE}", lesson=f"lesson {HOSTILE}")


def sample_runs() -> list[ScenarioRun]:
    """One run of each kind, in the order a demo would show them."""
    return [make_baseline_run(), make_tls_run(), make_squid_run(), make_setup_run(), make_skipped_run()]


@pytest.fixture
def make() -> SimpleNamespace:
    """The builders, for tests that need a run of their own: make.run(...), make.ok(...), ..."""
    return SimpleNamespace(
        run=build_run, ok=ok, intercepted=intercepted, refused=squid_refused, scenario=make_scenario, hostile=HOSTILE
    )


@pytest.fixture
def baseline_run() -> ScenarioRun:
    return make_baseline_run()


@pytest.fixture
def tls_run() -> ScenarioRun:
    return make_tls_run()


@pytest.fixture
def squid_run() -> ScenarioRun:
    return make_squid_run()


@pytest.fixture
def setup_run() -> ScenarioRun:
    return make_setup_run()


@pytest.fixture
def skipped_run() -> ScenarioRun:
    return make_skipped_run()


@pytest.fixture
def hostile_run() -> ScenarioRun:
    return make_hostile_run()


@pytest.fixture
def all_runs() -> list[ScenarioRun]:
    return sample_runs()


@pytest.fixture(scope="session")
def shared_runs() -> list[ScenarioRun]:
    """The same runs as all_runs, built once for slow tests (a browser); do not modify them."""
    return sample_runs()
