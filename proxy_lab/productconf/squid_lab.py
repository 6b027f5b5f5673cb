"""The lab rewrite of a squid.conf: only what must change for it to run in a lab namespace.

What changes, and why (each Change says it again):
- listening: every `http_port`/`https_port`/`ftp_port` moves to the namespace's proxy address, where
  only the lab's addresses exist; a port that would then collide with the meter's port (the same
  number on another address) is commented out;
- what Squid writes: `pid_filename`, `cache_log`, `access_log`, `cache_store_log`, `icap_log`,
  `netdb_filename` (its state), `coredump_dir`, `cache_dir` and the certificate database of
  `sslcrtd_program` move to the lab's temporary directory; those with a default under /var or /run
  are added when absent, so that nothing of the machine's own Squid is touched;
- `cache_effective_user`/`cache_effective_group` only when they name an account this machine lacks;
- names: `dns_nameservers` points at the lab's DNS (added when absent, so the machine's resolver is
  never asked), `hosts_file` at the namespace's hosts file;
- addresses of another network (`tcp_outgoing_address`, `udp_*_address`) and parent proxies
  (`cache_peer*`, `never_direct`) are commented out: they lie outside the lab, which checks this
  proxy's own rules;
- with SslBump, the upstream trust (`tls_outgoing_options cafile=`, the obsolete `sslproxy_cafile`)
  points at the lab PB root, since a real deployment checks public roots where the lab's cloud is
  signed by the PB root.
Everything else (ACLs, `http_access` order, auth helpers and their files, `ssl_bump` rules and the CA
they name, timeouts, delay pools) is kept, and files the configuration names are used where they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from proxy_lab.productconf.edits import Edits
from proxy_lab.productconf.facts import LabFacts, account_exists
from proxy_lab.productconf.model import Directive, ProductConfig
from proxy_lab.productconf.ports import ListenPort, choose_port, squid_ports

DEFAULT_USER = "proxy"  # Debian's squid is built --with-default-user=proxy
CERTGEN = "/usr/lib/squid/security_file_certgen"
WHY_WRITES = "Squid writes here: the lab keeps its files in its temporary directory, away from the machine's own Squid"
WHY_PEER = "a parent proxy lies outside the lab: the lab checks this proxy's own rules, going direct"


@dataclass(frozen=True)
class SquidLab:
    edits: Edits
    port: ListenPort
    port_note: str
    run_as: str
    prepare: tuple[tuple[str, ...], ...]


def uses_ssl_bump(model: ProductConfig) -> Directive | None:
    """The first port with `ssl-bump` (TLS inspection, which needs a squid built with OpenSSL)."""
    for d in model.named("http_port", "https_port"):
        if "ssl-bump" in d.args[1:]:
            return d
    return None


def _ports(e: Edits, facts: LabFacts) -> tuple[ListenPort, str]:
    chosen, note = choose_port(e.model, facts.port)
    kept: set[int] = set()
    for p in [chosen, *(p for p in squid_ports(e.model) if p.directive != chosen.directive)]:
        meters = p.directive == chosen.directive
        number = facts.bind_port or p.port if meters else p.port
        if number in kept:
            e.comment_out(p.directive, f"on the namespace's one proxy address it would collide with the meter's port {number}")
            continue
        kept.add(number)
        why = (
            "the meter's proxy port, moved to the lab namespace's proxy address"
            if meters
            else "moved to the lab namespace's proxy address (only the lab's addresses exist there)"
        )
        e.args(p.directive, {1: f"{facts.proxy_authority}:{number}"}, why)
    return chosen, note


def _path_value(value: str, new_path: str) -> str | None:
    """`value` (`[module:]path`) with its path replaced; None when it writes no file (none, syslog)."""
    module, sep, _ = value.partition(":")
    if value == "none" or module == "syslog":
        return None
    if sep and module in ("stdio", "daemon"):
        return f"{module}:{new_path}"
    if sep and module in ("tcp", "udp"):
        return f"stdio:{new_path}"  # a network log server is not in the lab
    return new_path


def _logs(e: Edits, w: Path) -> None:
    single = {
        "pid_filename": (f"{w}/squid.pid", True),
        "cache_log": (f"{w}/cache.log", True),
        "netdb_filename": (f"stdio:{w}/netdb.state", True),
        "coredump_dir": (str(w), True),
        "cache_store_log": (f"stdio:{w}/store.log", False),
        "icap_log": (f"{w}/icap.log", False),
        "cache_swap_state": (f"{w}/swap.state", False),
    }
    for name, (target, add_when_absent) in single.items():
        found = e.model.named(name)
        for d in found:
            if d.args and (value := _path_value(d.args[0], target.partition(":")[2] or target)) is not None:
                e.args(d, {1: value}, WHY_WRITES)
        if not found and add_when_absent:
            e.append([f"{name} {target}"], WHY_WRITES + " (Squid's default is under /var or /run)")
    logs = e.model.named("access_log", "cache_access_log")
    for i, d in enumerate(logs):
        target = f"{w}/access{'' if i == 0 else f'-{i + 1}'}.log"
        if d.args and (value := _path_value(d.args[0], target)) is not None:
            e.args(d, {1: value}, WHY_WRITES)
    if not logs:
        e.append([f"access_log stdio:{w}/access.log squid"], WHY_WRITES + " (Squid's default is /var/log/squid/access.log)")
    for i, d in enumerate(e.model.named("cache_dir")):
        if len(d.args) >= 2:
            e.args(d, {2: f"{w}/cache-{i + 1}"}, WHY_WRITES + " (created with squid -z before the start)")


def _certgen(e: Edits, w: Path) -> tuple[str, ...] | None:
    """Move the certificate database of `sslcrtd_program` (or add one for an ssl-bump port that mints
    certificates); returns the command that creates the database."""
    db = f"{w}/ssl_db"
    for d in e.model.named("sslcrtd_program"):
        args = list(d.args)
        if "-s" in args and args.index("-s") + 1 < len(args):
            i = args.index("-s") + 1
            size = args[args.index("-M") + 1] if "-M" in args and args.index("-M") + 1 < len(args) else "4MB"
            e.args(d, {i + 1: db}, WHY_WRITES + " (its certificate database, created before the start)")
            return (args[0], "-c", "-s", db, "-M", size)
        return None  # no database: a certificate per request
    bump_ports = [d for d in e.model.named("http_port", "https_port") if "ssl-bump" in d.args[1:]]
    if any("generate-host-certificates=off" not in d.args for d in bump_ports):
        e.append([f"sslcrtd_program {CERTGEN} -s {db} -M 4MB"],
                 WHY_WRITES + " (Squid's default certificate database is /var/spool/squid/ssl_db)")  # fmt: skip
        return (CERTGEN, "-c", "-s", db, "-M", "4MB")
    return None


def _accounts(e: Edits) -> str:
    users = e.model.named("cache_effective_user")
    run_as = users[-1].args[0] if users and users[-1].args else DEFAULT_USER
    if not account_exists(run_as):
        fallback = DEFAULT_USER if account_exists(DEFAULT_USER) else "nobody"
        why = f"user {run_as!r} does not exist on this machine: Squid, started as root, runs as {fallback!r} instead"
        for d in users:
            e.args(d, {1: fallback}, why)
        if not users:
            e.append([f"cache_effective_user {fallback}"], why)
        run_as = fallback
    for d in e.model.named("cache_effective_group"):
        if d.args and not account_exists(d.args[0], group=True):
            e.comment_out(d, f"group {d.args[0]!r} does not exist on this machine: Squid uses the user's own group")
    return run_as


def _names(e: Edits, facts: LabFacts) -> None:
    why = f"names resolve through the lab's DNS ({facts.dns_server}), which answers for the guide's hosts"
    servers = e.model.named("dns_nameservers")
    for d in servers:
        e.replace(d, f"dns_nameservers {facts.dns_server}", why)
    if not servers:
        e.append([f"dns_nameservers {facts.dns_server}"], why + ", never through the machine's resolver")
    for d in e.model.named("hosts_file"):
        if d.args and d.args[0] not in ("none", facts.hosts_file):
            e.args(d, {1: facts.hosts_file}, "the namespace's hosts file maps the guide's hosts to the lab's cloud")


def _outside(e: Edits, facts: LabFacts) -> None:
    local = ("0.0.0.0", "::", "[::]", facts.proxy_host)
    for d in e.model.named("tcp_outgoing_address", "udp_outgoing_address", "udp_incoming_address"):
        if d.args and d.args[0] not in local:
            e.comment_out(d, f"address {d.args[0]} does not exist in the lab namespace: Squid could not reach the lab's cloud from it")
    for d in e.model.named("cache_peer", "cache_peer_access", "cache_peer_domain", "neighbor_type_domain", "never_direct"):
        e.comment_out(d, WHY_PEER)


def _trust(e: Edits, facts: LabFacts) -> None:
    why = (
        "the lab PB root signs the lab's cloud: Squid checks the servers behind the TLS it inspects against it "
        "(a real deployment checks the public roots here)"
    )
    options = e.model.named("tls_outgoing_options")
    for d in options:
        index = next((i for i, a in enumerate(d.args, 1) if a.startswith("cafile=")), None)
        if index is not None:
            e.args(d, {index: f"cafile={facts.pb_root}"}, why)
        else:
            e.args(d, {}, why, append=[f"cafile={facts.pb_root}"])
    if not options:
        e.append([f"tls_outgoing_options cafile={facts.pb_root}"], why)
    for d in e.model.named("sslproxy_cafile"):
        e.args(d, {1: str(facts.pb_root)}, why + "; obsolete since Squid 4, which ignores it")


def squid_lab(model: ProductConfig, facts: LabFacts) -> SquidLab:
    e = Edits(model)
    w = facts.workdir
    chosen, note = _ports(e, facts)
    _logs(e, w)
    prepare: list[tuple[str, ...]] = []
    if model.named("cache_dir"):
        prepare.append(("squid", "-N", "-z", "-f", "{config}"))
    if uses_ssl_bump(model) is not None:
        if (certgen := _certgen(e, w)) is not None:
            prepare.append(certgen)
        _trust(e, facts)
    run_as = _accounts(e)
    _names(e, facts)
    _outside(e, facts)
    return SquidLab(e, chosen, note, run_as, tuple(prepare))
