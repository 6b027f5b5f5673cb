"""The firewall diagnosis of a direct check: failing results said in a site firewall's terms.

With no proxy in the path (`proxy-lab check --direct`), a failure is the site firewall's doing (or an
appliance's on the way): `diagnose_direct` groups the failing results by `firewall_cause` (a port
dropped or rejected, a connection cut or closed when quiet, TLS re-signed by a transparent appliance,
DNS over TCP or UDP blocked), each with its one-sentence remedy in `FIREWALL_CAUSES`.
"""

from __future__ import annotations

from collections.abc import Sequence

from proxy_lab.advice import CAUSES, Cause
from proxy_lab.check.verdict import Finding
from proxy_lab.outcomes import Outcome, Result

# The guide, Ports, Port 53: IT departments that use a "rules based" method ... "allow for both UDP
# and TCP traffic to this port."
_DNS_RULE = "(the guide, Port 53: 'allow for both UDP and TCP traffic to this port.')"

FIREWALL_CAUSES: dict[str, Cause] = {
    c.id: c
    for c in (
        Cause("fw_drop", "firewall: TCP connections silently dropped (no answer to the connect)",
              "allow outgoing TCP from the meter to {ports} on the site firewall: the connect got no "
              "answer at all (a DROP rule): {hosts}"),
        Cause("fw_reject", "firewall: TCP connections rejected (TCP reset: connection refused)",
              "allow outgoing TCP from the meter to {ports} on the site firewall: the connect was "
              "answered with a reset (a REJECT rule): {hosts}"),
        Cause("dns_tcp", "firewall: DNS over TCP to 8.8.8.8 blocked",
              "allow DNS from the meter to 8.8.8.8 on port 53 over TCP as well as UDP " + _DNS_RULE),
        Cause("dns_udp", "firewall: DNS over UDP to 8.8.8.8 blocked",
              "allow DNS from the meter to 8.8.8.8 on port 53 over UDP and TCP " + _DNS_RULE),
        Cause("fw_tls", "TLS intercepted by a transparent appliance (TLS re-signed on the way)",
              "TLS re-signed by {issuer}: exempt {these_hosts} (or the meter's address) from the "
              "transparent appliance's SSL inspection: {hosts}"),
        Cause("fw_idle", "firewall: quiet connections closed (idle or session timeout)",
              "raise the firewall's idle (session) timeout for the meter's TCP connections to {ports} "
              "above the time the meter keeps them quiet (TeamViewer and mtalk sessions): {hosts}"),
        Cause("fw_cut", "firewall: connections cut mid-exchange (IPS, session or size limits)",
              "exempt the meter's connections to {ports} from intrusion prevention, content scanning "
              "and session limits on the firewall: {hosts}"),
        Cause("fw_filter", "a transparent web filter answers in the origin's place",
              "exempt {these_hosts} from the transparent web filter for the meter: {hosts}"),
        Cause("fw_stall", "answers stop arriving after the connect (dropped mid-stream?)",
              "make sure answers from {these_hosts} on {ports} reach the meter (a firewall dropping "
              "packets after the connect, an asymmetric route): {hosts}"),
        Cause("fw_protocol", "something on the path answers in another protocol (transparent proxy?)",
              "let the meter's connections to {these_hosts} on {ports} reach the origin untouched: {hosts}"),
        Cause("site_dns", "the site's DNS does not resolve some of the guide's hosts",
              "let the meter's DNS resolve {these_hosts} (forwarders, split horizon): {hosts}"),
        CAUSES["throttle"],
        CAUSES["other"],
    )
}  # fmt: skip


def firewall_cause(r: Result) -> str:
    """The firewall cause of one failing result of a direct check, from its outcome and evidence."""
    text = f"{r.detail} {' '.join(r.evidence.transcript)}"
    if r.endpoint.startswith("dns+tcp"):
        return "dns_tcp"
    if r.endpoint.startswith("dns+udp"):
        return "dns_udp"
    match r.outcome:
        case Outcome.TIMEOUT if "did not accept a TCP connection" in r.detail:
            return "fw_drop"
        case Outcome.TIMEOUT:
            return "fw_stall"
        case Outcome.UNREACHABLE if "resolver has no address" in r.detail:
            return "site_dns"
        case Outcome.UNREACHABLE:
            return "fw_reject"
        case Outcome.RESET if "while holding" in text:
            return "fw_idle"
        case Outcome.RESET:
            return "fw_cut"
        case Outcome.TLS_INTERCEPTED:
            return "fw_tls"
        case Outcome.REFUSED | Outcome.TAMPERED:
            return "fw_filter"
        case Outcome.PROTOCOL_MISMATCH:
            return "fw_protocol"
        case Outcome.DEGRADED:
            return "throttle"
    return "other"


def diagnose_direct(results: Sequence[Result]) -> list[Finding]:
    """Failing results grouped by firewall cause, in the order of `FIREWALL_CAUSES`."""
    findings: dict[str, Finding] = {}
    for r in results:
        if r.outcome == Outcome.PASS:
            continue
        cid = firewall_cause(r)
        f = findings.setdefault(cid, Finding(FIREWALL_CAUSES[cid], evidence=r.detail))
        if r.service not in f.services:
            f.services.append(r.service)
        f.endpoints.append(r.endpoint)
        f.results.append(r)
    order = list(FIREWALL_CAUSES)
    return sorted(findings.values(), key=lambda f: order.index(f.cause.id))
