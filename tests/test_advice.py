"""Advice: each remedy sentence lives once, in `CAUSES`; a result's remedy and a finding's fill it in."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest

import proxy_lab.check as check
from proxy_lab.advice import CAUSES, Cause, Scope, cause_of, remedy
from proxy_lab.outcomes import CertSummary, Evidence, Outcome, Result

SQUID_DENIED = [("X-Squid-Error", "ERR_ACCESS_DENIED 0")]
CORP_CA = "CN=Corp Inspection CA,O=corp"


def result(
    outcome: Outcome, endpoint: str, service: str = "svc", detail: str = "", **evidence: Any
) -> Result:
    return Result("s", service, endpoint, outcome, detail, Evidence(**evidence), 0.01)


def fills(template: str, text: str) -> bool:
    """`text` is `template` with every field replaced by some text: all of its wording is the template's."""
    pattern = "".join(
        re.escape(literal) + ("(.+?)" if name is not None else "")
        for literal, name, _, _ in string.Formatter().parse(template)
    )
    return re.fullmatch(pattern, text, flags=re.DOTALL) is not None


# One failing result per cause, with evidence as the device records it, and what its remedy must name.
SAMPLES: dict[str, tuple[Result, list[str]]] = {
    "allow_ports": (
        result(
            Outcome.REFUSED,
            "http://distservp1.pb.com/csd/dstproduct",
            connect_status=403,
            connect_headers=SQUID_DENIED,
        ),
        ["allow CONNECT to port 80: on Squid add it to SSL_ports", "on tinyproxy add 'ConnectPort 80'"],
    ),
    "port_closed": (
        result(Outcome.UNREACHABLE, "tcp://master3.teamviewer.com:5938/"),
        ["port 5938", "check the proxy address and port typed on the meter"],
    ),
    "port_reset": (result(Outcome.RESET, "tcp://master3.teamviewer.com:5938/"), ["port 5938", "TCP_RESET"]),
    "exclusions": (
        result(
            Outcome.REFUSED, "https://decometlb20.pb.com/", connect_status=403, connect_headers=SQUID_DENIED
        ),
        ["allow CONNECT to this host through the proxy", "PAC", ": decometlb20.pb.com"],
    ),
    "deny_hosts": (
        result(
            Outcome.REFUSED,
            "tcp://master3.teamviewer.com:5938/",
            connect_status=403,
            connect_headers=[("X-Web-Filter-Category", "remote-access")],
        ),
        ["in the web filter, allow this host", ": master3.teamviewer.com"],
    ),
    "allow_hosts": (
        result(
            Outcome.REFUSED,
            "https://pb-ota.redbend.com/",
            connect_status=403,
            connect_headers=[("X-Web-Filter-Policy", "allow-list only")],
        ),
        ["add this host to the web filter's allow-list", ": pb-ota.redbend.com"],
    ),
    "auth_schemes": (
        result(
            Outcome.AUTH_REQUIRED,
            "https://decometlb20.pb.com/",
            connect_status=407,
            auth_schemes=["NTLM", "Negotiate"],
        ),
        ["offers only NTLM, Negotiate", "Basic only"],
    ),
    "credentials": (
        result(
            Outcome.AUTH_REQUIRED, "https://decometlb20.pb.com/", connect_status=407, auth_schemes=["Basic"]
        ),
        ["username and password typed on the meter", "case sensitive"],
    ),
    "challenge_style": (
        result(
            Outcome.REFUSED, "https://decometlb20.pb.com/", connect_status=401, connect_reason="Unauthorized"
        ),
        ["407 and a Proxy-Authenticate: Basic challenge", "RFC 9110 §11.7.1", "sent 401 + WWW-Authenticate"],
    ),
    "tls_inspect": (
        result(
            Outcome.TLS_INTERCEPTED,
            "https://pb-ota.redbend.com/",
            connect_status=200,
            chain_shown=[CertSummary("CN=pb-ota.redbend.com", CORP_CA, "00", "", "")],
        ),
        [f"TLS re-signed by '{CORP_CA}'", "SSL inspection", ": pb-ota.redbend.com"],
    ),
    "socks_only": (
        result(Outcome.PROTOCOL_MISMATCH, "https://decometlb20.pb.com/"),
        ["HTTP proxy port", "SOCKS"],
    ),
    "connect_quirks": (
        result(
            Outcome.REFUSED, "https://decometlb20.pb.com/", connect_status=204, connect_reason="No Content"
        ),
        ["exactly '200 Connection established'", "sent 204 No Content", "accepts only 200"],
    ),
    "dns_fail": (
        result(
            Outcome.UNREACHABLE,
            "https://pb-ota.redbend.com/",
            connect_status=503,
            connect_headers=[("X-Squid-Error", "ERR_DNS_FAIL 0")],
        ),
        ["resolve and reach this host", "DNS", ": pb-ota.redbend.com"],
    ),
    "upstream": (
        result(
            Outcome.UNREACHABLE,
            "https://pb-ota.redbend.com/",
            connect_status=504,
            connect_reason="Gateway Timeout",
        ),
        ["reach this host on port 443", ": pb-ota.redbend.com"],
    ),
    "dns_direct": (
        result(Outcome.UNREACHABLE, "dns+udp://8.8.8.8:53/decometlb20.pb.com"),
        ["DNS to 8.8.8.8 on port 53 over both UDP and TCP"],
    ),
    "reset_after": (
        result(Outcome.RESET, "https://cometservp1.pb.com/", connect_status=200),
        ["cut tunnels to this host on port 443", ": cometservp1.pb.com"],
    ),
    "idle_timeout": (
        result(Outcome.RESET, "tcp://master3.teamviewer.com:5938/", connect_status=200),
        ["idle timeout", "this host on port 5938", ": master3.teamviewer.com"],
    ),
    "latency": (
        result(Outcome.TIMEOUT, "https://s3.amazonaws.com/", connect_status=200),
        ["this host on port 443", "within seconds", ": s3.amazonaws.com"],
    ),
    "block_page": (
        result(
            Outcome.REFUSED, "http://distservp1.pb.com/csd/dstproduct", connect_status=200, http_status=403
        ),
        ["exempt this host from web filtering", "HTTP 403 inside the tunnel", ": distservp1.pb.com"],
    ),
    "tamper": (
        result(
            Outcome.TAMPERED, "http://distservp1.pb.com/csd/dstproduct", connect_status=200, http_status=200
        ),
        ["exempt this host from content rewriting", ": distservp1.pb.com"],
    ),
    "throttle": (
        result(Outcome.DEGRADED, "https://dlsdlp1.pb.com/", connect_status=200, kbps=96.0),
        ["384 kbit/s each way"],
    ),
    "slow_setup": (
        result(Outcome.DEGRADED, "https://dlsdlp1.pb.com/", connect_status=200),
        ["upstream connect path to this host", ": dlsdlp1.pb.com"],
    ),
    "refused": (
        result(
            Outcome.REFUSED, "https://decometlb20.pb.com/", connect_status=403, connect_reason="Forbidden"
        ),
        ["allow CONNECT to this host on port 443", ": decometlb20.pb.com"],
    ),
}


def test_the_samples_cover_every_cause_a_failure_can_have() -> None:
    assert set(SAMPLES) == set(CAUSES) - {"other"}


@pytest.mark.parametrize("cause", sorted(SAMPLES))
def test_a_results_remedy_is_its_causes_sentence_filled_in_and_no_other(cause: str) -> None:
    r, _ = SAMPLES[cause]
    assert cause_of(r)[0] == cause
    text = remedy(r)
    assert fills(CAUSES[cause].remedy, text), text
    assert "{" not in text and "}" not in text
    assert [c for c in CAUSES if c != cause and fills(CAUSES[c].remedy, text)] == []  # the matcher can fail


@pytest.mark.parametrize("cause", sorted(SAMPLES))
def test_a_results_remedy_names_its_host_port_and_evidence(cause: str) -> None:
    r, needles = SAMPLES[cause]
    text = remedy(r)
    assert [n for n in needles if n not in text] == [], text


@pytest.mark.parametrize(
    ("evidence", "needle"),
    [
        ({"connect_status": 401, "connect_reason": "Unauthorized"}, "sent 401 + WWW-Authenticate"),
        (
            {"connect_status": 407, "connect_reason": "Proxy Authentication Required"},
            "sent 407 without a Proxy-Authenticate challenge",
        ),
    ],
)
def test_the_challenge_remedy_says_which_wrong_challenge_was_sent(
    evidence: dict[str, Any], needle: str
) -> None:
    r = result(Outcome.REFUSED, "https://decometlb20.pb.com/", **evidence)
    assert cause_of(r)[0] == "challenge_style" and needle in remedy(r)


def test_bytes_after_the_200_head_are_a_connect_quirk_named_in_the_remedy() -> None:
    r = result(Outcome.PROTOCOL_MISMATCH, "https://decometlb20.pb.com/", connect_status=200)
    assert cause_of(r)[0] == "connect_quirks"
    assert "sent bytes after the 200 head" in remedy(r) and fills(CAUSES["connect_quirks"].remedy, remedy(r))


def test_a_pass_has_no_remedy() -> None:
    assert remedy(result(Outcome.PASS, "https://dlsdlp1.pb.com/", connect_status=200)) == ""


def test_the_check_fills_the_same_sentence_for_every_port_a_finding_groups() -> None:
    urls = [
        "http://distservp1.pb.com/csd/dstproduct",
        "tcp://master3.teamviewer.com:5938/",
        "http://eureka.pitneybowes.com/x",
    ]
    rs = [
        result(Outcome.REFUSED, u, service=f"s{i}", connect_status=403, connect_headers=SQUID_DENIED)
        for i, u in enumerate(urls)
    ]
    [finding] = check.diagnose(rs)
    text = check.specific_remedy(finding)
    assert finding.cause is CAUSES["allow_ports"] and fills(finding.cause.remedy, text)
    assert "allow CONNECT to ports 80 and 5938: on Squid add them to SSL_ports" in text
    assert "'ConnectPort 80' and 'ConnectPort 5938'" in text


def test_the_check_names_every_host_exactly_grouped_by_service_and_never_a_wildcard() -> None:
    hosts = {
        "os_updates": ["pb-ota.redbend.com"],
        "health_data": ["s3.amazonaws.com"],
        "funds": ["a.pb.com", "b.pb.com", "c.pb.com"],
        "device_management": [f"h{i}.google.com" for i in range(12)],
    }
    chain = [CertSummary("CN=x", CORP_CA, "00", "", "")]
    rs = [
        result(Outcome.TLS_INTERCEPTED, f"https://{h}/", service=s, connect_status=200, chain_shown=chain)
        for s, hs in hosts.items()
        for h in hs
    ]
    [finding] = check.diagnose(rs)
    text = check.specific_remedy(finding)
    assert fills(CAUSES["tls_inspect"].remedy, text)
    assert text.startswith(f"TLS re-signed by '{CORP_CA}': exempt these hosts from SSL inspection")
    assert ": os_updates: pb-ota.redbend.com; health_data: s3.amazonaws.com; funds: a.pb.com, b.pb.com and c.pb.com; " in text
    assert all(f"h{i}.google.com" in text for i in range(12))
    assert "*" not in text and "hosts)" not in text


def test_one_services_hosts_are_listed_without_its_name() -> None:
    chain = [CertSummary("CN=x", CORP_CA, "00", "", "")]
    rs = [
        result(Outcome.TLS_INTERCEPTED, f"https://{h}.pb.com/", service="funds", connect_status=200, chain_shown=chain)
        for h in ("a", "b", "c")
    ]
    [finding] = check.diagnose(rs)
    assert check.specific_remedy(finding).endswith("by SNI): a.pb.com, b.pb.com and c.pb.com")


def test_the_port_lists_of_advice_are_the_catalogs_proxy_ports_5228_included() -> None:
    from proxy_lab.advice import GUIDE_PORTS, guide_ports
    from proxy_lab.catalog import load_catalog

    assert GUIDE_PORTS == guide_ports() == load_catalog().proxy_ports
    assert 5228 in GUIDE_PORTS
    text = CAUSES["allow_ports"].remedy_for(Scope())
    assert "acl SSL_ports port 443 80 5228 5938" in text
    assert "ports 80, 443, 5228 and 5938" in text


def test_a_finding_without_results_still_fills_its_sentence_from_its_endpoints() -> None:
    finding = check.Finding(
        CAUSES["upstream"], ["os_updates"], ["https://pb-ota.redbend.com/"], "504 Gateway Timeout"
    )
    assert check.specific_remedy(finding) == CAUSES["upstream"].remedy_for(
        Scope(hosts=("pb-ota.redbend.com",), ports=(443,))
    )
    assert "reach this host on port 443" in check.specific_remedy(finding)
    assert check.specific_remedy(finding).endswith(": pb-ota.redbend.com")


def test_a_remedy_naming_an_unknown_field_is_rejected_when_the_table_loads() -> None:
    with pytest.raises(ValueError, match=r"cause 'x': remedy names unknown fields \['host'\]"):
        Cause("x", "title", "exempt {host} from inspection")
