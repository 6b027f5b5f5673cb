"""The smallest change to a squid.conf that lets the meter through, in Squid's own syntax.

From a check's findings, for each endpoint the meter could not reach, `squid_access` finds the
`http_access` rule that refuses it, and the fix is chosen by what that rule is:
- a `deny` that holds because the port is not in a `port` ACL (`http_access deny CONNECT !SSL_ports`):
  the missing ports are added to that ACL, after its last `acl` line (`acl SSL_ports port 80 5228
  5938`): the guide's own remedy, and the one Squid's documentation gives for CONNECT ports;
- any other refusal (a `deny` that caught the meter, or the default after the last `allow`): an ACL
  for the meter's source address and `http_access allow` for it, placed ahead of that rule.
SSL inspection: `ssl_bump splice` for the meter's address (or for the guide's exact hosts, listed
in a new file) ahead of the first `bump`/`stare` rule. A delay pool that shapes the meter below the
guide's 384 kbit/s: `delay_access N deny` for the meter ahead of the pool's rules. Rules are only ever
added ahead of what caught the meter, keyed on its address or on exact hosts, never on wildcards.
Every added block starts with one comment line quoting the guide. The fixed text is parsed again and
every refused endpoint checked once more; what is still refused is reported, not hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import proxy_lab.productconf.guide as guide
from proxy_lab.catalog import Catalog
from proxy_lab.productconf.edits import Edits
from proxy_lab.productconf.model import Directive, ProductConfig, apply_changes
from proxy_lab.productconf.ports import ListenPort, choose_port
from proxy_lab.productconf.problems import REFUSALS, Problem, Unfixed, sendpro_name
from proxy_lab.productconf.squid_access import Acl, Request, acls, decide, http_access, rule_matches
from proxy_lab.productconf.squid_parse import parse_squid

BUMPING = ("bump", "stare", "server-first", "client-first")
MIN_BYTES_PER_S = 384_000 // 8  # the guide's 384 kbit/s floor in a delay pool's bytes per second


@dataclass
class Block:
    """Lines to insert in the main file next to `anchor` (None: at its end), comment first."""

    anchor: Directive | None
    after: bool
    lines: list[str]
    why: str
    uses_meter: bool = False


@dataclass
class Plan:
    model: ProductConfig
    meter_ip: str
    port: ListenPort
    user: str | None
    table: dict[str, Acl]
    rules: list[Directive]
    meter: str
    blocks: list[Block] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    unfixed: list[Unfixed] = field(default_factory=list)
    files: dict[Path, str] = field(default_factory=dict)
    port_acl: dict[str, list[int]] = field(default_factory=dict)

    def request(self, host: str, port: int) -> Request:
        name = next((o.split("=", 1)[1] for o in self.port.directive.args[1:] if o.startswith("name=")), self.port.directive.args[0])
        return Request(self.meter_ip, host, port, self.port.port, name, self.user)

    def main_anchor(self, d: Directive) -> Directive:
        return self.model.in_main(d)


def _ports_text(ports: Sequence[int]) -> str:
    return ", ".join(str(p) for p in ports[:-1]) + (" and " if len(ports) > 1 else "") + str(ports[-1])


def _extend_port_acl(plan: Plan, rule: Directive, req: Request) -> bool:
    """Add `req.port` to the port ACL whose negation makes `rule` refuse it; False when none does."""
    for word in rule.args[1:]:
        acl = plan.table.get(word[1:]) if word.startswith("!") else None
        if acl is None or acl.type != "port":
            continue
        grown = {**plan.table, acl.name: Acl(acl.name, "port", (*acl.values, str(req.port)))}
        if rule_matches(rule.args[1:], req, grown)[0] is False:
            plan.table = grown
            plan.port_acl.setdefault(acl.name, []).append(req.port)
            return True
    return False


def _allow_meter(plan: Plan, rule: Directive | None) -> None:
    """`http_access allow <meter>` ahead of `rule` (None: after the last rule, whose default refused)."""
    model = plan.model
    synthetic = Directive(model.path, 0, 0, "http_access", ("allow", plan.meter))
    plan.table.setdefault(plan.meter, Acl(plan.meter, "src", (plan.meter_ip,)))
    last = plan.rules[-1] if plan.rules else None
    if rule is None:
        plan.rules.append(synthetic)
        anchor, after, what = (plan.main_anchor(last), True, "after the last http_access rule") if last else (None, True, "")
    else:
        plan.rules.insert(plan.rules.index(rule), synthetic)
        anchor, after, what = plan.main_anchor(rule), False, f"before `{rule}` ({rule.path.name} line {rule.line})"
    why = f"let the meter ({plan.meter_ip}) through {what}".rstrip()
    plan.blocks.append(Block(anchor, after, [guide.comment(why, guide.NO_OBSTRUCTIONS), f"http_access allow {plan.meter}"], why, True))


def plan_access(plan: Plan, problems: Sequence[Problem]) -> None:
    targets = list(dict.fromkeys(t for p in problems for t in p.targets()))
    for _ in range(4):  # each round lets at least one endpoint through, or gives up
        progress = False
        for host, port in targets:
            req = plan.request(host, port)
            d = decide(plan.rules, req, plan.table)
            if d.allowed:
                continue
            if d.action == "auth":
                continue  # a 407: the meter's credentials, reported by the check as such
            if d.rule is not None and d.rule.args[0] == "deny" and _extend_port_acl(plan, d.rule, req):
                progress = True
                continue
            _allow_meter(plan, d.rule)
            progress = True
        if not progress:
            break
    for name, ports in plan.port_acl.items():
        ports = sorted(set(ports))
        last = [d for d in plan.model.named("acl") if d.args and d.args[0] == name][-1]
        why = f"CONNECT to {'port' if len(ports) == 1 else 'ports'} {_ports_text(ports)} for the meter (acl {name})"
        plan.blocks.append(Block(plan.main_anchor(last), True, [guide.comment(why, guide.CONNECT_PORT), f"acl {name} port {' '.join(map(str, ports))}"], why))


def plan_splice(plan: Plan, problems: Sequence[Problem], catalog: Catalog, fix_dir: Path, by_hosts: bool) -> bool:
    first = next((d for d in plan.model.named("ssl_bump") if d.args and d.args[0] in BUMPING), None)
    if first is None:
        return False
    if by_hosts:
        known = set(catalog.hosts())
        hosts = sorted({h for p in problems for h, _ in p.targets() if h in known})
        name = sendpro_name(set(plan.table), "sendpro_tls_hosts")
        listing = fix_dir / f"{plan.model.path.stem}.sendpro-tls-hosts.txt"
        plan.files[listing] = "".join(h + "\n" for h in hosts)
        why = f"do not inspect TLS to the guide's {len(hosts)} hosts (exact names, listed in {listing.name})"
        lines = [guide.comment(why, guide.NO_INSPECTION), f'acl {name} ssl::server_name "{listing}"', f"ssl_bump splice {name}"]
        plan.blocks.append(Block(plan.main_anchor(first), False, lines, why))
    else:
        why = f"do not inspect the meter's TLS ({plan.meter_ip}): splice it before `{first}`"
        plan.blocks.append(Block(plan.main_anchor(first), False, [guide.comment(why, guide.NO_INSPECTION), f"ssl_bump splice {plan.meter}"], why, True))
    return True


def plan_delay(plan: Plan) -> bool:
    """`delay_access N deny <meter>` for each pool that takes the meter and shapes below 384 kbit/s."""
    params = {d.args[0]: d.args[1:] for d in plan.model.named("delay_parameters") if d.args}
    pools: dict[str, list[Directive]] = {}
    for d in plan.model.named("delay_access"):
        if len(d.args) >= 2:
            pools.setdefault(d.args[0], []).append(d)
    req = plan.request("", 443)
    done = False
    for pool, rules in pools.items():
        shifted = [replace(d, args=d.args[1:]) for d in rules]
        if not decide(shifted, req, plan.table).allowed:
            continue
        rates = [int(a.split("/")[0]) for a in params.get(pool, ()) if a.split("/")[0].lstrip("-").isdigit()]
        if not any(0 <= r < MIN_BYTES_PER_S for r in rates):
            continue
        why = f"do not shape the meter ({plan.meter_ip}) with delay pool {pool} (below 384 kbit/s)"
        lines = [guide.comment(why, guide.BANDWIDTH), f"delay_access {pool} deny {plan.meter}"]
        plan.blocks.append(Block(plan.main_anchor(rules[0]), False, lines, why, True))
        done = True
    return done


def _position(model: ProductConfig, b: Block) -> tuple[int, int]:
    if b.anchor is None:
        return len(model.main.lines) + 1, 1
    return (b.anchor.last_line if b.after else b.anchor.line), (1 if b.after else 0)


def build(plan: Plan) -> Edits:
    """The plan's blocks as Changes; the meter's ACL goes in the first block (in file order) using it."""
    e = Edits(plan.model)
    users = sorted((b for b in plan.blocks if b.uses_meter), key=lambda b: _position(plan.model, b))
    if users:
        users[0].lines.insert(1, f"acl {plan.meter} src {plan.meter_ip}")
    for b in plan.blocks:
        if b.anchor is None:
            e.append(b.lines, b.why)
        elif b.after:
            e.insert_after(b.anchor, b.lines, b.why)
        else:
            e.insert_before(b.anchor, b.lines, b.why)
    return e


def fix_squid(model: ProductConfig, problems: Sequence[Problem], *, meter_ip: str, user: str | None, port: int | None,
              catalog: Catalog, fix_dir: Path, splice_by: str) -> tuple[Edits, Plan]:  # fmt: skip
    chosen, _ = choose_port(model, port)
    table = acls(model)
    plan = Plan(model, meter_ip, chosen, user, table, list(model.named("http_access")), sendpro_name(set(table), "sendpro_meter"))
    refusals = [p for p in problems if p.cause in REFUSALS]
    for p in refusals:
        open_already = [f"{h}:{n}" for h, n in p.targets() if decide(plan.rules, plan.request(h, n), plan.table).allowed]
        if open_already and len(open_already) == len(p.targets()):
            plan.unfixed.append(Unfixed(p.cause, f"this file's http_access lets the meter ({meter_ip}) CONNECT to "
                                                 f"{', '.join(open_already)}: the refusal comes from elsewhere "
                                                 "(deny_info, an ICAP service, a firewall, an upstream proxy)"))  # fmt: skip
        else:
            plan.fixed.append(p.cause)
    if refusals:
        plan_access(plan, refusals)
    tls = [p for p in problems if p.cause == "tls_inspect"]
    if tls:
        if plan_splice(plan, tls, catalog, fix_dir, splice_by == "hosts"):
            plan.fixed.append("tls_inspect")
        else:
            plan.unfixed.append(Unfixed("tls_inspect", "TLS was re-signed, but no ssl_bump rule of this file bumps or stares: "
                                                       "the inspection is done elsewhere (a firewall, another proxy)"))  # fmt: skip
    if any(p.cause == "throttle" for p in problems):
        if plan_delay(plan):
            plan.fixed.append("throttle")
        else:
            plan.unfixed.append(Unfixed("throttle", "no delay pool of this file shapes the meter below 384 kbit/s: the limit is elsewhere"))
    e = build(plan)
    _verify(plan, refusals, apply_changes(model.main, e.changes))
    return e, plan


def _verify(plan: Plan, refusals: Sequence[Problem], fixed_text: str) -> None:
    """Parse the fixed text again and report every endpoint its rules still refuse."""
    fixed = parse_squid(plan.model.path, fixed_text)
    for p in refusals:
        for host, port in p.targets():
            d = http_access(fixed, plan.request(host, port))
            if d.allowed:
                continue
            where = f"`{d.rule}` ({d.rule.path.name} line {d.rule.line})" if d.rule else "the default after the last http_access rule"
            what = "asks for credentials" if d.action == "auth" else "still refuses"
            plan.unfixed.append(Unfixed(p.cause, f"CONNECT {host}:{port} from {plan.meter_ip}: {where} {what} after the fix"))
            if p.cause in plan.fixed:
                plan.fixed.remove(p.cause)
