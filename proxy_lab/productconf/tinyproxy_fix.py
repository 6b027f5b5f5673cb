"""The smallest change to a tinyproxy.conf that lets the meter through, in tinyproxy's own syntax.

For each endpoint a finding says was refused, `tinyproxy_access` names the stage that refuses it, and
each stage has its fix:
- `Allow`/`Deny` (the meter's address is not allowed): `Allow <meter-ip>`, ahead of the `Deny` that
  caught it, or after the last `Allow`/`Deny` line;
- `ConnectPort` (the port is not listed): one `ConnectPort` line per missing port, after the last one;
- `Filter`: tinyproxy reads one filter file, so the fixed configuration points `Filter` at a new file
  next to it: the user's patterns, plus the meter's exact hosts when `FilterDefaultDeny Yes` makes it
  an allow-list, or minus (commented out) the patterns that block them when it is a deny-list. The
  user's own filter file is never changed.
`BasicAuth` (407) is the meter's credentials: not changed. Every change starts with one comment line
quoting the guide. The fixed configuration is evaluated again; what is still refused is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import proxy_lab.productconf.guide as guide
from proxy_lab.catalog import Catalog
from proxy_lab.productconf.edits import Edits
from proxy_lab.productconf.model import ProductConfig, apply_changes, bare
from proxy_lab.productconf.problems import REFUSALS, Problem, Unfixed
from proxy_lab.productconf.source import read_lines
from proxy_lab.productconf.tinyproxy_access import (
    FilterSettings,
    client_access,
    filter_blocks,
    filter_settings,
    refusing_stages,
    tinyproxy_access,
)
from proxy_lab.productconf.tinyproxy_parse import filter_patterns, parse_tinyproxy


@dataclass
class TinyFix:
    edits: Edits
    files: dict[Path, str] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    unfixed: list[Unfixed] = field(default_factory=list)


def host_pattern(f: FilterSettings, host: str) -> str:
    """A filter pattern matching exactly `host` (for CONNECT, `host:port` with FilterURLs)."""
    if f.kind == "fnmatch":
        return f"{host}:*" if f.urls else host
    escaped = re.sub(r"([.\\^$*\[\]])", r"\\\1", host)
    return f"^{escaped}:" if f.urls else f"^{escaped}$"


def _allow(fix: TinyFix, meter_ip: str) -> None:
    model = fix.edits.model
    decision = client_access(model, meter_ip)
    why = f"let the meter ({meter_ip}) connect"
    lines = [guide.comment(why, guide.NO_OBSTRUCTIONS), f"Allow {meter_ip}"]
    if decision.directive is not None and decision.directive.key == "deny":
        fix.edits.insert_before(decision.directive, lines, why + f", ahead of `{decision.directive}`")
    else:
        last = model.named("allow", "deny")[-1]
        fix.edits.insert_after(last, lines, why + " (tinyproxy denies every address its Allow lines do not name)")


def _connect_ports(fix: TinyFix, ports: Sequence[int]) -> None:
    last = fix.edits.model.named("connectport")[-1]
    listed = ", ".join(map(str, ports))
    why = f"CONNECT to {'port' if len(ports) == 1 else 'ports'} {listed} for the meter"
    fix.edits.insert_after(last, [guide.comment(why, guide.CONNECT_PORT), *(f"ConnectPort {p}" for p in ports)], why)


def _filter(fix: TinyFix, f: FilterSettings, blocked: Sequence[tuple[str, int]], catalog: Catalog, fix_dir: Path) -> None:
    source = Path(f.path)
    lines, _ = read_lines(source, "filter file")
    new = fix_dir / f"{source.name}.sendpro"
    known = set(catalog.hosts())
    hosts = list(dict.fromkeys(h for h, _ in blocked if h in known))
    nl = "\n"
    if f.default_deny:
        why = f"the meter's {len(hosts)} hosts (the guide's, exact names) added to the filter's allow-list"
        text = "".join(lines) + ("" if not lines or lines[-1].endswith("\n") else nl)
        text += guide.comment(why, guide.NO_OBSTRUCTIONS) + nl + "".join(host_pattern(f, h) + nl for h in hosts)
    else:
        culprits = {p for h, port in blocked if (p := filter_blocks(f, h, port)[1]) is not None}
        why = f"{len(culprits)} filter pattern(s) blocking the guide's hosts commented out"
        out: list[str] = []
        for raw in lines:
            pattern = filter_patterns((raw,))
            if pattern and pattern[0] in culprits:
                out += [guide.comment(f"blocks the meter's hosts: {pattern[0]}", guide.NO_OBSTRUCTIONS) + nl, "# " + raw]
            else:
                out.append(raw)
        text = "".join(out)
    fix.files[new] = text
    fix.edits.args(f.directive, {1: f'"{new}"'}, f"reads {new.name}: {why}")
    # the Filter line gets its comment line too
    c = fix.edits.changes[-1]
    fix.edits.changes[-1] = replace(c, new=(guide.comment(f"filter file {new.name}: {why}", guide.NO_OBSTRUCTIONS), *c.new))


def fix_tinyproxy(model: ProductConfig, problems: Sequence[Problem], *, meter_ip: str, user: str | None,
                  catalog: Catalog, fix_dir: Path) -> TinyFix:  # fmt: skip
    fix = TinyFix(Edits(model))
    refusals = [p for p in problems if p.cause in REFUSALS]
    stages: dict[str, list[tuple[str, int]]] = {}
    for p in refusals:
        for host, port in p.targets():
            for d in refusing_stages(model, meter_ip, host, port, user):
                if d.stage is not None and (host, port) not in stages.get(d.stage, []):
                    stages.setdefault(d.stage, []).append((host, port))
    if "acl" in stages:
        _allow(fix, meter_ip)
    if "connectport" in stages:
        _connect_ports(fix, sorted({port for _, port in stages["connectport"]}))
    if "filter" in stages and (f := filter_settings(model)) is not None:
        _filter(fix, f, stages["filter"], catalog, fix_dir)
    for p in refusals:
        if any(t in found for found in stages.values() for t in p.targets()):
            fix.fixed.append(p.cause)
        else:
            fix.unfixed.append(Unfixed(p.cause, f"this file lets the meter ({meter_ip}) through to "
                                                f"{', '.join(f'{h}:{n}' for h, n in p.targets())}: the refusal comes from elsewhere"))  # fmt: skip
    if "auth" in stages:
        fix.unfixed.append(Unfixed("credentials", "tinyproxy asks for BasicAuth: set the proxy username and password on the meter"))
    _verify(fix, refusals, meter_ip, user)
    return fix


def _verify(fix: TinyFix, refusals: Sequence[Problem], meter_ip: str, user: str | None) -> None:
    model = fix.edits.model
    fixed = parse_tinyproxy(model.path, apply_changes(model.main, fix.edits.changes))
    values = dict(fixed.file_values)
    for path, text in fix.files.items():
        values[str(path)] = filter_patterns(tuple(bare(line) for line in text.splitlines()))
    fixed = replace(fixed, file_values=values)
    for p in refusals:
        for host, port in p.targets():
            d = tinyproxy_access(fixed, meter_ip, host, port, user)
            if not d.allowed and d.stage != "auth":
                where = f"`{d.directive}`" if d.directive else f"the {d.stage} default"
                fix.unfixed.append(Unfixed(p.cause, f"CONNECT {host}:{port} from {meter_ip}: {where} still refuses it after the fix"))
                if p.cause in fix.fixed:
                    fix.fixed.remove(p.cause)
