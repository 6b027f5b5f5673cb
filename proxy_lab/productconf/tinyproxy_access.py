"""What in a tinyproxy.conf refuses the meter's CONNECT, without running tinyproxy.

tinyproxy 1.11 decides in this order (src/reqs.c; observed with the real binary):
1. `Allow`/`Deny` (acl.c `check_acl`): without any, every client is allowed; otherwise the first line
   matching the client's address decides and "Deny all connections by default" (403 Access denied).
   A line naming a host (not an address) needs DNS and is undecided here: taken the way that keeps
   the meter out;
2. `BasicAuth`: without the meter's credentials, 407;
3. `ConnectPort`: "If no ConnectPort line is found, all ports are allowed"; otherwise CONNECT to a
   port not listed gets 403 Access violation;
4. `Filter` (filter.c): the CONNECT host (with `FilterURLs On`, `host:port`) is searched with each
   pattern (POSIX basic regular expressions by default, extended with `FilterType ere` or
   `FilterExtended Yes`, shell patterns with `FilterType fnmatch`; case-insensitive unless
   `FilterCaseSensitive Yes`); a match blocks (403 Filtered), or with `FilterDefaultDeny Yes` a
   match is what lets the host through.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from proxy_lab.productconf.model import Directive, ProductConfig
from proxy_lab.productconf.tinyproxy_parse import unquote

Stage = Literal["acl", "auth", "connectport", "filter"]
_TRUE = ("yes", "on", "true", "1")


@dataclass(frozen=True)
class TinyDecision:
    allowed: bool
    stage: Stage | None = None  # what refused it
    directive: Directive | None = None  # the line that decided (None: a default)
    assumed: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilterSettings:
    directive: Directive
    path: str
    patterns: tuple[str, ...]
    kind: Literal["bre", "ere", "fnmatch"]
    urls: bool
    case_sensitive: bool
    default_deny: bool


def _flag(model: ProductConfig, name: str) -> bool | None:
    found = model.named(name)
    return found[-1].args[0].strip('"').lower() in _TRUE if found and found[-1].args else None


def filter_settings(model: ProductConfig) -> FilterSettings | None:
    found = model.named("filter")
    if not found or not found[-1].args:
        return None
    d = found[-1]
    path = unquote(d.args[0])
    full = path if path.startswith("/") else str(d.path.parent / path)
    types = model.named("filtertype")
    kind = types[-1].args[0].strip('"').lower() if types and types[-1].args else ("ere" if _flag(model, "filterextended") else "bre")
    return FilterSettings(
        d, full, model.file_values.get(full, ()), kind if kind in ("bre", "ere", "fnmatch") else "bre",  # type: ignore[arg-type]
        bool(_flag(model, "filterurls")), bool(_flag(model, "filtercasesensitive")), bool(_flag(model, "filterdefaultdeny")),
    )  # fmt: skip


def bre_to_python(pattern: str) -> str:
    """A POSIX basic regular expression as a Python one: `\\( \\) \\{ \\} \\|` are the operators and
    `( ) { } | + ?` plain characters."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "(){}|" else "\\" + nxt)
            i += 2
            continue
        if c == "*" and (not out or out[-1] in ("^", "(")):
            out.append(r"\*")
        elif c in "(){}|+?":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def filter_matches(f: FilterSettings, pattern: str, host: str, port: int) -> bool | None:
    subject = f"{host}:{port}" if f.urls else host
    if f.kind == "fnmatch":
        return fnmatch.fnmatchcase(subject if f.case_sensitive else subject.lower(), pattern if f.case_sensitive else pattern.lower())
    try:
        rx = re.compile(pattern if f.kind == "ere" else bre_to_python(pattern), 0 if f.case_sensitive else re.IGNORECASE)
    except re.error:
        return None
    return rx.search(subject) is not None


def filter_blocks(f: FilterSettings, host: str, port: int) -> tuple[bool, str | None, tuple[str, ...]]:
    """(blocked, the pattern that decided or None, patterns undecided)."""
    undecided: list[str] = []
    for p in f.patterns:
        m = filter_matches(f, p, host, port)
        if m is None:
            undecided.append(p)
        elif m:
            return (not f.default_deny), p, tuple(undecided)
    return f.default_deny, None, tuple(undecided)


def client_access(model: ProductConfig, src: str) -> TinyDecision:
    lines = model.named("allow", "deny")
    if not lines:
        return TinyDecision(True)
    addr = ipaddress.ip_address(src)
    assumed: list[str] = []
    for d in lines:
        if not d.args:
            continue
        value = d.args[0]
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            assumed.append(value)  # a host name: tinyproxy asks DNS
            if d.key == "deny":
                return TinyDecision(False, "acl", d, tuple(assumed))
            continue
        if addr.version == net.version and addr in net:
            return TinyDecision(d.key == "allow", None if d.key == "allow" else "acl", d, tuple(assumed))
    return TinyDecision(False, "acl", None, tuple(assumed))


def refusing_stages(model: ProductConfig, src: str, host: str, port: int, user: str | None = None) -> list[TinyDecision]:
    """Every stage that refuses the meter's CONNECT (each judged alone), in tinyproxy's order."""
    out: list[TinyDecision] = []
    client = client_access(model, src)
    if not client.allowed:
        out.append(client)
    auth = model.named("basicauth")
    if auth and (user is None or user not in (d.args[0] for d in auth if d.args)):
        out.append(TinyDecision(False, "auth", auth[0]))
    ports = model.named("connectport")
    if ports and str(port) not in (d.args[0] for d in ports if d.args):
        out.append(TinyDecision(False, "connectport", ports[-1]))
    f = filter_settings(model)
    if f is not None:
        blocked, _, undecided = filter_blocks(f, host, port)
        if blocked:
            out.append(TinyDecision(False, "filter", f.directive, undecided))
    return out


def tinyproxy_access(model: ProductConfig, src: str, host: str, port: int, user: str | None = None) -> TinyDecision:
    """Whether tinyproxy lets the meter at `src` CONNECT to `host:port`, and if not, what refuses it."""
    found = refusing_stages(model, src, host, port, user)
    return found[0] if found else TinyDecision(True, None, None, client_access(model, src).assumed)
