"""The lab rewrite of a tinyproxy.conf: only what must change for it to run in a lab namespace.

- `Listen` moves to the namespace's proxy address (added when absent: without it tinyproxy binds
  every address, the cloud's included); other `Listen` lines are commented out (their addresses do
  not exist there). `Port` stays: tinyproxy has one.
- `PidFile` and `LogFile` move to the lab's temporary directory.
- `User`/`Group` change only when they name an account this machine lacks.
- `Bind` (the outgoing address) and `Upstream` proxies are commented out: they lie outside the lab.
tinyproxy resolves names with the system resolver, which inside the namespace is the lab's
(`ip netns exec` mounts its resolv.conf and hosts): nothing to change for DNS. Everything else is
kept: `Allow`/`Deny`, `ConnectPort`, `BasicAuth`, `Filter` and its file, timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy_lab.productconf.edits import Edits
from proxy_lab.productconf.facts import LabFacts, account_exists
from proxy_lab.productconf.model import ProductConfig
from proxy_lab.productconf.ports import ListenPort, choose_port
from proxy_lab.productconf.squid_lab import WHY_PEER

WHY_WRITES = "tinyproxy writes here: the lab keeps its files in its temporary directory, away from the machine's own tinyproxy"


@dataclass(frozen=True)
class TinyproxyLab:
    edits: Edits
    port: ListenPort
    port_note: str
    run_as: str | None


def tinyproxy_lab(model: ProductConfig, facts: LabFacts) -> TinyproxyLab:
    e = Edits(model)
    w = facts.workdir
    chosen, note = choose_port(model, facts.port)
    if facts.bind_port is not None and facts.bind_port != chosen.port:
        e.args(chosen.directive, {1: str(facts.bind_port)}, f"the lab listens for the meter on port {facts.bind_port}")
    listens = model.named("listen")
    for i, d in enumerate(listens):
        if i == 0:
            e.args(d, {1: facts.proxy_host}, "the meter's proxy address: moved to the lab namespace's proxy address")
        else:
            e.comment_out(d, "the lab namespace has one proxy address: the first Listen line's")
    if not listens:
        e.append([f"Listen {facts.proxy_host}"],
                 "without Listen tinyproxy binds every address (the lab's cloud's too): it listens on the namespace's proxy address")  # fmt: skip
    for name, file in (("pidfile", "tinyproxy.pid"), ("logfile", "tinyproxy.log")):
        for d in model.named(name):
            e.args(d, {1: f'"{w}/{file}"'}, WHY_WRITES)
    run_as: str | None = None
    for name, fallback, group in (("user", "nobody", False), ("group", "nogroup", True)):
        for d in model.named(name):
            if not d.args:
                continue
            account = d.args[0].strip('"')
            if not account_exists(account, group=group):
                e.args(d, {1: fallback}, f"{name} {account!r} does not exist on this machine: tinyproxy, started as root, uses {fallback!r}")
                account = fallback
            if not group:
                run_as = account
    for d in model.named("bind"):
        e.comment_out(d, f"address {' '.join(d.args)} does not exist in the lab namespace: tinyproxy could not reach the lab's cloud from it")
    for d in model.named("upstream"):
        if d.args and d.args[0].lower() != "none":
            e.comment_out(d, WHY_PEER)
    return TinyproxyLab(e, chosen, note, run_as)
