"""Advice: for an observed failure, its cause, the guide's rule it breaks and the change that fixes it.

This module owns the one table of remedies, `CAUSES`: each cause names the proxy feature that
produces a failure and holds the one sentence saying what to change, a template whose fields
(`{hosts}`, `{ports}`, `{issuer}`, ...; see `Scope.fields`) name what it applies to. `cause_of`
recognises the cause in a Result's evidence. `remedy(result)` fills the template for one result
(the reports); the field check (proxy_lab.check) fills the same template for every host and port a
finding groups. Pure functions over Results (outcome and evidence), so every place a failure is
shown gives the same rule and the same remedy.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from proxy_lab.catalog import load_catalog
from proxy_lab.outcomes import Outcome, Result

# The guide's rule each outcome breaks. Words in quotation marks are the guide's, exactly
# (tests/test_quotescan.py); what the guide does not say is labelled as the project's assumption,
# named by its id in docs/assumptions.md.
GUIDE_RULES: dict[Outcome, str] = {
    Outcome.REFUSED: (
        "Guide, Proxy: 'All communication must tunnel through the proxy when enabled.'; URL Information: "
        "'These URLs must be accessible from the device, without any obstructions.' That port 80 goes "
        "through CONNECT too is the project's assumption (docs/assumptions.md, connect_everywhere)."
    ),
    Outcome.AUTH_REQUIRED: (
        "Guide, Proxy step 6: 'If your Proxy Server requires authentication, select the box and additional "
        "fields will be displayed', a username and a password ('This is case sensitive for proxy servers.'). "
        "The guide names no scheme: that the meter answers Basic only, as Android 7's OkHttp does, is the "
        "project's assumption (docs/assumptions.md, basic_only)."
    ),
    Outcome.TLS_INTERCEPTED: (
        "Guide, URL Information: the URLs must be 'free of any SSL packet inspection'; Advanced Network "
        "Requirements: 'SSL packet inspection should be disabled for these ports'."
    ),
    Outcome.PROTOCOL_MISMATCH: (
        "Guide, Proxy: 'HTTP CONNECT Tunneling method' only; 'Socket Secure (SOCKS) protocol is not supported.'"
    ),
    Outcome.UNREACHABLE: (
        "Guide, Ports and Communication Requirements: 'All communication is initiated from the system via "
        "ports 80 (HTTP) and 443 (TLS)'; Advanced Network Requirements: 'SendPro C, SendPro+ uses Port 53 "
        "for DNS lookup.'; Remote Access names port 5938 and Device Management port 5228."
    ),
    Outcome.TIMEOUT: (
        "Guide, Advanced Network Requirements: 'High-speed network connection.' and 'a minimum network "
        "bandwidth of 384 kbps (upstream and downstream)'. The guide gives no timeout: how long the meter "
        "waits is the project's assumption (docs/assumptions.md, timeouts)."
    ),
    Outcome.RESET: (
        "Guide, Advanced Network Requirements: web filtering devices and SSL packet inspection 'can affect "
        "performance or could prevent functionality'; URL Information: 'These URLs must be accessible from "
        "the device, without any obstructions.'"
    ),
    Outcome.TAMPERED: (
        "Guide, FAQ: 'Incoming data and files are signed and verified prior to use'; URL Information: "
        "free of 'web filtering devices or software monitoring'."
    ),
    Outcome.DEGRADED: (
        "Guide, Advanced Network Requirements: 'a minimum network bandwidth of 384 kbps (upstream and "
        "downstream) to operate, but we recommend 1 Mbit/sec for best performance.'"
    ),
}


def guide_ports() -> tuple[int, ...]:
    """The ports a proxy must tunnel for the meter: the catalog's `proxy_ports` (80, 443, 5228,
    5938; docs/assumptions.md, port_5228); what `{ports}` says when a finding names none."""
    return load_catalog().proxy_ports


GUIDE_PORTS = (80, 443, 5228, 5938)  # the catalog's proxy_ports as shipped; tests keep the two equal


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _port(url: str) -> int | None:
    try:
        parts = urlsplit(url)
        return parts.port or {"http": 80, "https": 443, "dns+udp": 53, "dns+tcp": 53}.get(parts.scheme)
    except ValueError:
        return None


def _and(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`: a list as a sentence says it."""
    if len(items) < 2:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def hosts_by_service(groups: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Exact host names, grouped by the service that needs them, never compacted into a wildcard
    (a security team will not exempt all of Google from inspection): `a.pb.com and b.pb.com` for one
    service; `funds: a.pb.com and b.pb.com; health_data: s3.amazonaws.com` for several."""
    named = [(service, list(dict.fromkeys(hosts))) for service, hosts in groups if hosts]
    if len(named) == 1 or all(not service for service, _ in named):
        return _and(list(dict.fromkeys(h for _, hs in named for h in hs)))
    return "; ".join(f"{service}: {_and(hosts)}" if service else _and(hosts) for service, hosts in named)


@dataclass(frozen=True)
class Scope:
    """What a remedy applies to: the hosts, ports and evidence of one failing result, or of every
    result a finding of the field check groups."""

    hosts: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    issuers: tuple[str, ...] = ()
    schemes: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    services: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (service, its hosts), when known

    @classmethod
    def of(cls, results: Iterable[Result]) -> Scope:
        """The scope of one result (its remedy) or of the several a finding groups (the check's)."""
        rs = list(results)
        evs = [r.evidence for r in rs]
        groups: dict[str, dict[str, None]] = {}
        for r in rs:
            groups.setdefault(r.service, {})[_host(r.endpoint)] = None
        return cls(
            hosts=tuple(dict.fromkeys(_host(r.endpoint) for r in rs)),
            ports=tuple(sorted({p for r in rs if (p := _port(r.endpoint)) is not None})),
            issuers=tuple(dict.fromkeys(ev.chain_shown[0].issuer for ev in evs if ev.chain_shown)),
            schemes=tuple(dict.fromkeys(s.split()[0] for ev in evs for s in ev.auth_schemes if s.split())),
            seen=tuple(dict.fromkeys(cause_of(r)[1] for r in rs)),
            services=tuple((s, tuple(hs)) for s, hs in groups.items()),
        )

    @classmethod
    def of_urls(cls, urls: Iterable[str], seen: str = "") -> Scope:
        """For a finding that kept only its endpoints and what was seen."""
        us = list(urls)
        ports = {p for u in us if (p := _port(u)) is not None}
        return cls(tuple(dict.fromkeys(map(_host, us))), tuple(sorted(ports)), seen=(seen,) if seen else ())

    def fields(self) -> dict[str, str]:
        """The values a remedy template may name, each said for one item or for several."""
        proxy_ports = guide_ports()
        ports = self.ports or proxy_ports
        groups = self.services or (("", self.hosts),)
        return {
            # Exact names, by service (`funds: a.pb.com and b.pb.com; os_updates: pb-ota.redbend.com`):
            # last in a sentence, as the list may be long
            "hosts": hosts_by_service(groups) or "the guide's hosts",
            "these_hosts": "this host" if len(self.hosts) == 1 else "these hosts",
            "ports": f"port {ports[0]}" if len(ports) == 1 else f"ports {_and([str(p) for p in ports])}",
            "ports_it": "it" if len(ports) == 1 else "them",  # the ports, as a pronoun
            "connect_ports": _and([f"'ConnectPort {p}'" for p in ports]),  # tinyproxy takes one port per line
            # Squid's SSL_ports line with every port the meter tunnels to (catalog `proxy_ports`)
            "ssl_ports_acl": "acl SSL_ports port " + " ".join(str(p) for p in (443, *(p for p in proxy_ports if p != 443))),
            "issuer": _and([f"'{i}'" for i in self.issuers]) or "an unknown CA",
            "schemes": ", ".join(self.schemes) or "schemes other than Basic",
            "seen": _and(self.seen) or "an answer the meter does not accept",
        }


REMEDY_FIELDS = frozenset(Scope().fields())


@dataclass(frozen=True)
class Cause:
    """A proxy behaviour recognised in the evidence: `id` names the feature (and the lab fault);
    `remedy` is the one sentence that fixes it, a template over the fields of `Scope.fields`."""

    id: str
    title: str
    remedy: str

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.remedy) if name is not None}
        if unknown := names - REMEDY_FIELDS:
            raise ValueError(
                f"cause {self.id!r}: remedy names unknown fields {sorted(unknown)}; "
                f"expected some of {sorted(REMEDY_FIELDS)}"
            )

    def remedy_for(self, scope: Scope) -> str:
        """The remedy said for these hosts, ports and evidence."""
        return self.remedy.format_map(scope.fields())


def cause_of(r: Result) -> tuple[str, str]:
    """(cause id, what was seen) for one failing result, from its evidence only."""
    ev = r.evidence
    squid = (ev.header("X-Squid-Error") or "").split(" ")[0]
    status = ev.connect_status
    text = f"{r.detail} {' '.join(ev.transcript)}".lower()
    match r.outcome:
        case Outcome.PROTOCOL_MISMATCH:
            if status == 200:
                return "connect_quirks", "bytes after the 200 head"
            return "socks_only", "a non-HTTP answer to CONNECT"
        case Outcome.AUTH_REQUIRED:
            schemes = [s.split()[0] for s in ev.auth_schemes if s.split()]
            if schemes and not any(s.lower() == "basic" for s in schemes):
                return "auth_schemes", f"offers only {', '.join(dict.fromkeys(schemes))}"
            return "credentials", "407 Basic again after the credentials were sent"
        case Outcome.TLS_INTERCEPTED:
            issuer = ev.chain_shown[0].issuer if ev.chain_shown else "an unknown CA"
            return "tls_inspect", f"re-signed by '{issuer}'"
        case Outcome.REFUSED:
            if status == 401:
                return "challenge_style", "401 + WWW-Authenticate"
            if status == 407:
                return "challenge_style", "407 without a Proxy-Authenticate challenge"
            if status is not None and 200 < status < 300:
                return "connect_quirks", f"{status} {ev.connect_reason}".strip()
            if status == 200 and ev.http_status is not None:
                return "block_page", f"HTTP {ev.http_status} inside the tunnel"
            if squid == "ERR_ACCESS_DENIED" and _port(r.endpoint) != 443:
                return "allow_ports", f"CONNECT to port {_port(r.endpoint)} refused ({status} {squid})"
            if squid == "ERR_ACCESS_DENIED":
                return "exclusions", f"CONNECT to {_host(r.endpoint)} refused ({status} {squid})"
            if status == 405:
                return "allow_ports", f"CONNECT to port {_port(r.endpoint)} answered 405"
            policy = ev.header("X-Web-Filter-Policy") or ""
            if status == 403 and "allow" in policy.lower():
                return "allow_hosts", f"block page for {_host(r.endpoint)} ({policy})"
            if status == 403 and (ev.header("X-Web-Filter-Category") or "block" in text or "filter" in text):
                category = ev.header("X-Web-Filter-Category") or "unknown category"
                return "deny_hosts", f"block page for {_host(r.endpoint)} (category {category})"
            return "refused", f"{status} {ev.connect_reason}".strip()
        case Outcome.UNREACHABLE:
            if squid.startswith("ERR_DNS_FAIL") or status == 502:
                return "dns_fail", f"{status} {squid or ev.connect_reason}".strip()
            if status in (503, 504):
                return "upstream", f"{status} {squid or ev.connect_reason}".strip()
            if not r.endpoint.startswith(("dns+udp", "dns+tcp")) and status is None:
                return "port_closed", "the proxy closed the connection without answering"
            return "dns_direct", "no answer from 8.8.8.8:53"
        case Outcome.RESET:
            if status is None:
                return "port_reset", "the proxy reset the connection after CONNECT"
            if _port(r.endpoint) in (5938, 5228) or "idle" in text:
                return "idle_timeout", "a quiet tunnel was closed"
            return "reset_after", "the tunnel was cut mid-exchange"
        case Outcome.TIMEOUT:
            return "latency", "no answer within the device's timeout"
        case Outcome.TAMPERED:
            if r.endpoint.endswith("generate_204") or "portal" in text or "block" in text:
                return "block_page", "a block or portal page instead of the content"
            return "tamper", "content altered in transit"
        case Outcome.DEGRADED:
            if ev.kbps is not None:
                return "throttle", f"{ev.kbps:.0f} kbit/s"
            return "slow_setup", "CONNECT answered only after a long wait"
    return "other", r.outcome.value


# Most important first: the field check lists its findings in this order.
CAUSES: dict[str, Cause] = {
    c.id: c
    for c in (
        Cause("allow_ports", "port rule: CONNECT to ports other than 443 refused",
              "allow CONNECT to {ports}: on Squid add {ports_it} to SSL_ports "
              "({ssl_ports_acl}); on tinyproxy add {connect_ports}; "
              "or exempt the meter's address from the port rule"),
        Cause("port_closed", "port rule: the proxy closes CONNECTs to some ports without answering",
              "allow CONNECT to {ports} for the meter; if every connection to the proxy fails, check the "
              "proxy address and port typed on the meter and that the proxy accepts connections from it"),
        Cause("port_reset", "port rule: the proxy resets CONNECTs to some ports (deny_info TCP_RESET)",
              "allow CONNECT to {ports} for the meter: remove the port rule (or firewall) that resets these "
              "connections, such as Squid's deny_info TCP_RESET"),
        Cause("exclusions", "the proxy refuses some of the guide's hosts (exclusion or ACL: meant to go DIRECT?)",
              "allow CONNECT to {these_hosts} through the proxy (add to its allow list; remove from "
              "exclusion and deny lists), as the meter sends everything to the proxy it was given (the guide: "
              "'The proxy does not support allowing exceptions or exclusions.'; that it cannot use a PAC file "
              "either is the project's assumption, docs/assumptions.md no_pac): {hosts}"),
        Cause("deny_hosts", "web filter: block page for some of the guide's hosts",
              "in the web filter, allow {these_hosts} for the meter, by host or by category: {hosts}"),
        Cause("allow_hosts", "web filter allow-list misses some of the guide's hosts",
              "add {these_hosts} to the web filter's allow-list for the meter: {hosts}"),
        Cause("auth_schemes", "proxy authentication: the proxy offers no Basic scheme",
              "the proxy offers only {schemes}: the meter answers Basic only (the project's assumption, as "
              "Android 7's OkHttp does: docs/assumptions.md basic_only); add a Basic realm for the "
              "meter, or exempt its address from authentication"),
        Cause("credentials", "proxy authentication: the username or password was rejected",
              "check the proxy username and password typed on the meter (both may be case sensitive) "
              "against the proxy's user store"),
        Cause("challenge_style", "non-compliant authentication challenge",
              "answer proxy authentication with 407 and a Proxy-Authenticate: Basic challenge "
              "(RFC 9110 §11.7.1), or exempt the meter's address from authentication "
              "(the proxy sent {seen})"),
        Cause("tls_inspect", "SSL inspection: TLS re-signed by another CA",
              "TLS re-signed by {issuer}: exempt {these_hosts} from SSL inspection "
              "(splice/do-not-inspect by SNI): {hosts}"),
        Cause("socks_only", "the proxy port does not speak HTTP (SOCKS?)",
              "give the meter an HTTP proxy port that accepts CONNECT; "
              "SOCKS and other protocols are not supported"),
        Cause("connect_quirks", "non-standard answer to CONNECT",
              "answer a successful CONNECT with exactly '200 Connection established' and nothing after the "
              "head (the proxy sent {seen}): the meter, like Android, accepts only 200, and the tunnel must "
              "carry only the server's bytes"),
        Cause("dns_fail", "the proxy cannot resolve some of the guide's hosts",
              "let the proxy resolve and reach {these_hosts} (its DNS first: forwarders, split horizon; "
              "then its upstream firewall): {hosts}"),
        Cause("upstream", "the proxy cannot reach some of the guide's hosts (firewall, routing, broken IPv6)",
              "let the proxy reach {these_hosts} on {ports} (firewall, routing, IPv6 on its upstream side): "
              "{hosts}"),
        Cause("dns_direct", "direct DNS to 8.8.8.8 is blocked",
              "allow DNS to 8.8.8.8 on port 53 over both UDP and TCP "
              "(the meter's connectivity test uses it)"),
        Cause("reset_after", "tunnels are cut mid-exchange",
              "do not limit or cut tunnels to {these_hosts} on {ports} (byte or size limits, AV scanning, "
              "resets on the proxy): {hosts}"),
        Cause("idle_timeout", "quiet tunnels are closed (idle timeout)",
              "raise the proxy's idle timeout for CONNECT tunnels to {these_hosts} on {ports} "
              "(TeamViewer holds quiet sessions): {hosts}"),
        Cause("latency", "answers arrive too late",
              "make sure answers from {these_hosts} on {ports} come through the proxy within seconds "
              "(reduce the delay on the proxy path; look for black holes or broken IPv6 upstream): {hosts}"),
        Cause("block_page", "plain HTTP answered by a block or captive-portal page",
              "exempt {these_hosts} from web filtering and portal redirection, as the meter needs the "
              "origin's own answer (the proxy sent {seen}): {hosts}"),
        Cause("tamper", "content altered in transit",
              "exempt {these_hosts} from content rewriting (AV, compression, banners), as the meter verifies "
              "what it receives: {hosts}"),
        Cause("throttle", "bandwidth below the guide's 384 kbit/s floor",
              "give the meter at least 384 kbit/s each way (1 Mbit/s recommended) "
              "and avoid slow upstream paths"),
        Cause("slow_setup", "slow tunnel set-up (broken IPv6 tried first? slow DNS?)",
              "fix the proxy's upstream connect path to {these_hosts} (IPv6 routing, DNS): {hosts}"),
        Cause("refused", "the proxy refused some CONNECTs",
              "allow CONNECT to {these_hosts} on {ports} for the meter "
              "(add to the proxy's allow list; remove from deny and exclusion lists): {hosts}"),
        Cause("other", "other failures", "see the evidence"),
    )
}  # fmt: skip


def remedy(result: Result) -> str:
    """A specific change to the proxy (or site) that would turn this result into a pass: the remedy
    of its cause in `CAUSES`, said for its host, port and evidence. Empty for a pass."""
    if result.outcome == Outcome.PASS:
        return ""
    return CAUSES[cause_of(result)[0]].remedy_for(Scope.of([result]))


def guide_rule(result: Result) -> str:
    return GUIDE_RULES.get(result.outcome, "")
