"""Squid as a target: a squid.conf generated from a Policy, with Debian's shipped access rules.

The access rules are those of Debian's /etc/squid/squid.conf (squid 5.7), in its order: `deny
!Safe_ports`, `deny CONNECT !SSL_ports`, the manager rules, then the site's own rules (Basic
authentication through `basic_ncsa_auth`, host lists), `allow localhost`, `deny all`. The lab's
allowed CONNECT ports become `SSL_ports`; without an `allow_ports` fault SSL_ports is 1-65535 (no
CONNECT restriction). Everything else is plumbing for a private instance: it listens on the
namespace's loopback, keeps no cache, writes pid and logs in its work directory, and resolves names
only through the namespace's /etc/hosts (`hosts_file`) and the cloud's DNS (`dns_nameservers`).

TLS inspection (`tls_inspect`) is Squid's SslBump, when the binary is built with OpenSSL (Debian's
`squid-openssl` package; the `squid` package is not): `http_port ... ssl-bump` minting certificates
with the lab's corporate CA, `ssl_bump peek` at step 1 then `splice` for the bypass list
(`ssl::server_name_regex`, since "dstdomain ACLs do not work during bump processing") and `bump` for
the rest, the upstream checked against the PB root (`tls_outgoing_options cafile=`), and non-TLS
tunnels (plain HTTP on 80, TeamViewer on 5938) passed on by `on_unsupported_protocol tunnel`.

A download throttle (`throttle` with `up_kbps = 0`) is one delay pool: Squid shapes what servers
send, for all of a client's tunnels together (the lab's throttle shapes each tunnel on its own, so
the rates measured differ while the verdicts agree: tests/targets/test_squid_throttle.py).

Not expressed: TLS inspection with a squid built without OpenSSL, refusals other than 403 or a
reset, a throttle on uploads, and any fault with no Policy meaning (see `proxy_lab.targets.product`).
"""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from proxy_lab.errors import TargetSkipped
from proxy_lab.targets.htpasswd import apr1_line
from proxy_lab.targets.product import LabFacts, Launch, Policy, find_binary, fnmatch_to_regex

NAME = "squid"
BINARY = "/usr/sbin/squid"
NCSA_HELPER = "/usr/lib/squid/basic_ncsa_auth"
CERTGEN_HELPER = "/usr/lib/squid/security_file_certgen"
DEFAULT_PORT = 3128
USER = "proxy"  # Debian's cache_effective_user

# Debian's /etc/squid/squid.conf, verbatim (comments trimmed): the ports every method may reach.
DEBIAN_SAFE_PORTS = ("80", "21", "443", "70", "210", "1025-65535", "280", "488", "591", "777")


def binary() -> str | None:
    return find_binary("PROXY_LAB_SQUID_BIN", "squid", BINARY)


@cache
def supports_ssl_bump(exe: str) -> bool:
    """True when `squid -v` shows an OpenSSL build (`--with-openssl`), which SslBump needs."""
    try:
        done = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--with-openssl" in done.stdout


def _ssl_ports(policy: Policy) -> str:
    if policy.connect_ports is None:
        return "1-65535"
    return " ".join(str(p) for p in policy.connect_ports)


def squid_conf(policy: Policy, facts: LabFacts, *, scenario_id: str = "", ssl_bump: bool = False) -> str:
    """The squid.conf for `policy`; raises TargetSkipped for what Squid cannot do.

    `ssl_bump` says whether the binary can intercept TLS (see `supports_ssl_bump`).
    """
    policy.skip_unexpressed(NAME, shapes_downloads=True)
    if policy.tls_inspect and not ssl_bump:
        raise TargetSkipped(
            "squid cannot express fault 'tls_inspect': ssl_bump needs a squid built with OpenSSL "
            "(Debian's squid-openssl package), and the installed squid is not"
        )
    if policy.connect_ports is not None and policy.port_refusal not in ("403", "reset"):
        raise TargetSkipped(f"squid cannot express allow_ports action {policy.port_refusal!r}: it answers 403 or resets")
    w = facts.workdir
    lines = [
        f"# proxy-lab: squid.conf for scenario {scenario_id or '?'} (generated; access rules as Debian ships them)",
        f"http_port {facts.listen_host}:{facts.listen_port}" + (_BUMP_PORT.format(w=w) if policy.tls_inspect else ""),
        "visible_hostname proxy-lab-squid",
        f"cache_effective_user {USER}",
        f"pid_filename {w}/squid.pid",
        f"cache_log {w}/cache.log",
        f"access_log stdio:{w}/access.log",
        "cache_store_log none",
        "logfile_rotate 0",
        f"coredump_dir {w}",
        "cache deny all",
        "cache_mem 8 MB",
        "pinger_enable off",
        "netdb_filename none",
        "shutdown_lifetime 0 seconds",
        "# names resolve only inside the lab's namespace: its /etc/hosts, then the cloud's DNS",
        "hosts_file /etc/hosts",
        f"dns_nameservers {facts.dns_server}",
        "",
        f"acl SSL_ports port {_ssl_ports(policy)}",
        *(f"acl Safe_ports port {p}" for p in DEBIAN_SAFE_PORTS),
        "http_access deny !Safe_ports",
        "http_access deny CONNECT !SSL_ports",
        *(["deny_info TCP_RESET SSL_ports"] if policy.connect_ports is not None and policy.port_refusal == "reset" else []),
        "http_access allow localhost manager",
        "http_access deny manager",
        "# INSERT YOUR OWN RULE(S) HERE (Debian's squid.conf): the scenario's rules follow",
    ]
    if policy.tls_inspect:
        lines += _bump_rules(policy, w)
    if policy.users:
        # `casesensitive off` (Squid's default) lower-cases the user name before the helper sees it,
        # so the password file holds lower-case names (squid.conf.documented, auth_param basic).
        lines += [
            f"auth_param basic program {NCSA_HELPER} {w}/passwd",
            "auth_param basic children 2 startup=1 idle=1",
            f"auth_param basic realm {policy.realm}",
            f"auth_param basic casesensitive {'on' if policy.username_case_sensitive else 'off'}",
            "acl lab_users proxy_auth REQUIRED",
        ]
    if policy.deny_hosts:
        lines.append("acl lab_denied dstdom_regex -i " + " ".join(fnmatch_to_regex(p) for p in policy.deny_hosts))
        lines.append("http_access deny lab_denied")
    if policy.allow_hosts is not None:
        if policy.allow_hosts:
            lines.append("acl lab_allowed dstdom_regex -i " + " ".join(fnmatch_to_regex(p) for p in policy.allow_hosts))
            lines.append("http_access deny !lab_allowed")
        else:
            lines.append("http_access deny all")
    if policy.users:
        lines.append("http_access deny !lab_users")
    lines += ["http_access allow localhost", "http_access deny all"]
    if policy.shape_down_kbps is not None:
        lines += _delay_pool(policy.shape_down_kbps)
    lines.append("")
    return "\n".join(lines)


def _delay_pool(kbps: float) -> list[str]:
    """`throttle` as one aggregate delay pool (squid.conf.documented, delay_pools): Squid refills the
    bucket once a second with `restore` bytes, up to `max`, and reads from servers (tunnels included)
    only what the bucket holds. One second of traffic at most, starting empty: no burst above the rate.
    """
    per_second = max(1, round(kbps * 1000 / 8))
    return [
        f"# throttle: {kbps:g} kbit/s of what servers send (delay pools do not shape uploads)",
        "delay_pools 1",
        "delay_class 1 1",
        f"delay_parameters 1 {per_second}/{per_second}",
        "delay_initial_bucket_level 0",
        "delay_access 1 allow all",
    ]


# The corporate CA (certificate and key in one PEM) signs the certificates Squid mints per host.
_BUMP_PORT = " ssl-bump tls-cert={w}/corp-ca.pem generate-host-certificates=on dynamic_cert_mem_cache_size=4MB"


def _bump_rules(policy: Policy, w: Path) -> list[str]:
    lines = [
        "# TLS inspection (SslBump) with the lab's corporate CA; the upstream must chain to the PB root",
        f"sslcrtd_program {CERTGEN_HELPER} -s {w}/ssl_db -M 4MB",
        "sslcrtd_children 2 startup=1 idle=1",
        f"tls_outgoing_options cafile={w}/pb-root.pem",
        "on_unsupported_protocol tunnel all",
        "acl lab_step1 at_step SslBump1",
        "ssl_bump peek lab_step1",
    ]
    if policy.tls_bypass:
        lines.append("acl lab_bypass ssl::server_name_regex -i " + " ".join(fnmatch_to_regex(p) for p in policy.tls_bypass))
        lines.append("ssl_bump splice lab_bypass")
    lines.append("ssl_bump bump all")
    return lines


def password_file(policy: Policy) -> str:
    lines = []
    for user, password in policy.users.items():
        name = user if policy.username_case_sensitive else user.lower()
        lines.append(apr1_line(name, password))
    return "\n".join(lines) + "\n"


def launch(policy: Policy, facts: LabFacts, *, scenario_id: str = "") -> Launch:
    exe = binary()
    bump = exe is not None and supports_ssl_bump(exe)
    files = {"squid.conf": squid_conf(policy, facts, scenario_id=scenario_id, ssl_bump=bump)}
    if exe is None:
        raise TargetSkipped(f"squid is not installed ({BINARY}); apt-get install squid")
    modes = {"squid.conf": 0o644}
    copies = {}
    prepare: list[tuple[str, ...]] = []
    if policy.users:
        files["passwd"] = password_file(policy)
        modes["passwd"] = 0o640
    if policy.tls_inspect:
        copies = {"corp-ca.pem": facts.corp_confdir / "mitmproxy-ca.pem", "pb-root.pem": facts.pb_root}
        modes["corp-ca.pem"] = 0o600
        # the certificate database must exist before Squid starts its helpers
        prepare.append((CERTGEN_HELPER, "-c", "-s", str(facts.workdir / "ssl_db"), "-M", "4MB"))
    return Launch(
        # -N: no daemon; -d 1: level-1 messages also on stderr, so a failed start can be quoted.
        argv=(exe, "-N", "-d", "1", "-f", str(facts.workdir / "squid.conf")),
        port=facts.listen_port,
        files=files,
        file_modes=modes,
        copies=copies,
        prepare=tuple(prepare),
        owner=USER,
        log_files=("cache.log",),
    )
