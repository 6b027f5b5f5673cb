"""Advice: for an observed failure, the guide's rule it breaks and the change that fixes it.

Pure functions over a Result (its outcome and evidence). Shared by the terminal, the reports and the
field check, so every place a failure is shown gives the same rule and the same remedy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from proxy_lab.outcomes import Outcome, Result

GUIDE_RULES: dict[Outcome, str] = {
    Outcome.REFUSED: (
        "Guide, Proxy: the meter tunnels all traffic with HTTP CONNECT to the destination's port "
        "(80, 443 and 5938); 'These URLs must be accessible from the device, without any obstructions.'"
    ),
    Outcome.AUTH_REQUIRED: (
        "Guide, Proxy step 6: the meter offers optional proxy authentication with a username and a "
        "case-sensitive password (HTTP Basic)."
    ),
    Outcome.TLS_INTERCEPTED: (
        "Guide, URL Information: the URLs must be 'free of any SSL packet inspection'; Advanced Network "
        "Requirements: 'SSL packet inspection should be disabled for these ports'."
    ),
    Outcome.PROTOCOL_MISMATCH: (
        "Guide, Proxy: 'HTTP CONNECT Tunneling method' only; 'Socket Secure (SOCKS) protocol is not supported.'"
    ),
    Outcome.UNREACHABLE: "Guide, Ports: all communication is initiated from the system via ports 80 and 443 (5938 for TeamViewer, 53 for DNS).",
    Outcome.TIMEOUT: "Guide, Advanced Network Requirements: a high-speed connection, at least 384 kbps each way.",
    Outcome.RESET: "Guide, Advanced Network Requirements: web filtering devices 'can affect performance or could prevent functionality'.",
    Outcome.TAMPERED: (
        "Guide, FAQ: 'Incoming data and files are signed and verified prior to use'; URL Information: "
        "free of 'web filtering devices or software monitoring'."
    ),
    Outcome.DEGRADED: (
        "Guide, Advanced Network Requirements: 'a minimum network bandwidth of 384 kbps (upstream and "
        "downstream)', 1 Mbit/sec recommended."
    ),
}


def _port(result: Result) -> int | None:
    try:
        return urlsplit(result.endpoint).port or {"http": 80, "https": 443}.get(urlsplit(result.endpoint).scheme)
    except ValueError:
        return None


def remedy(result: Result) -> str:
    """A specific change to the proxy (or site) that would turn this result into a pass."""
    ev = result.evidence
    host = urlsplit(result.endpoint).hostname or result.endpoint
    port = _port(result)
    squid_error = (ev.header("X-Squid-Error") or "").split(" ")[0]
    match result.outcome:
        case Outcome.REFUSED:
            if squid_error == "ERR_ACCESS_DENIED" and port not in (None, 443):
                return (
                    f"allow CONNECT to port {port}: on Squid add it to SSL_ports (acl SSL_ports port 443 80 5938); "
                    "on tinyproxy add 'ConnectPort {port}'; or exempt the meter's address from the port rule"
                ).replace("{port}", str(port))
            if ev.connect_status == 401:
                return "answer proxy authentication with 407 and Proxy-Authenticate (RFC 9110 §11.7.1), not 401; or exempt the meter"
            if ev.connect_status == 407:
                return "send a Proxy-Authenticate: Basic challenge with the 407 (RFC 9110 §11.7.1)"
            if ev.connect_status is not None and 200 < ev.connect_status < 300:
                return "answer a successful CONNECT with exactly '200 Connection established' (the meter, like Android, accepts only 200)"
            if ev.connect_status == 200 and ev.http_status is not None:
                return f"stop filtering plain HTTP to {host}: allow it in the web filter (HTTP {ev.http_status} came back inside the tunnel)"
            return f"allow CONNECT to {host}:{port} for the meter (add it to the proxy's allow list; remove it from deny and exclusion lists)"
        case Outcome.AUTH_REQUIRED:
            schemes = [s for s in ev.auth_schemes if s]
            if schemes and not any(s.lower() == "basic" for s in schemes):
                return (
                    f"the proxy offers only {', '.join(schemes)}: the meter supports Basic only; add a Basic realm "
                    "for the meter, or exempt its address from authentication"
                )
            return "check the proxy username and password typed on the meter (both may be case sensitive) against the proxy's user store"
        case Outcome.TLS_INTERCEPTED:
            issuer = ev.chain_shown[0].issuer if ev.chain_shown else "an unknown CA"
            return f"TLS to {host} re-signed by '{issuer}': exempt {host} from SSL inspection (splice/do-not-inspect by SNI)"
        case Outcome.PROTOCOL_MISMATCH:
            if ev.connect_status == 200:
                return "send nothing after the '200 Connection established' head: the tunnel must carry only the server's bytes"
            return "give the meter an HTTP proxy port that accepts CONNECT; SOCKS and other protocols are not supported"
        case Outcome.UNREACHABLE:
            if squid_error.startswith("ERR_DNS_FAIL") or ev.connect_status in (502, 503):
                return f"let the proxy resolve and reach {host} (DNS and firewall on the proxy's upstream side)"
            if result.evidence.connect_status is None and port == 53:
                return "allow DNS to 8.8.8.8 on port 53 over both UDP and TCP"
            return "check the proxy address and port typed on the meter, and that the proxy accepts connections from it"
        case Outcome.TIMEOUT:
            return f"make sure {host}:{port} answers through the proxy within seconds: no black hole, no excessive delay"
        case Outcome.RESET:
            return f"do not cut tunnels to {host}:{port} (idle timeouts, byte limits or resets on the proxy)"
        case Outcome.TAMPERED:
            return f"exempt {host} from web filtering and content rewriting: the meter verifies what it receives"
        case Outcome.DEGRADED:
            return "give the meter at least 384 kbit/s each way (1 Mbit/s recommended) and avoid slow upstream paths"
        case _:
            return ""


def guide_rule(result: Result) -> str:
    return GUIDE_RULES.get(result.outcome, "")
