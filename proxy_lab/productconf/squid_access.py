"""Which `http_access` rule of a squid.conf decides the meter's CONNECT, without running Squid.

Squid's rules (squid.conf.documented, http_access and acl): the rules are tried in order and the first
whose ACLs all match decides; "If none of the "access" lines cause a match, the default is the
opposite of the last line in the list" (no line at all: deny). The values of `acl` lines with the same
name add up (any one matches); `!name` negates. ACLs `all`, `manager`, `localhost`, `to_localhost`
and `CONNECT` are predefined.

ACL types decided here, for a CONNECT from the meter's address to a host and port: `src`, `dst`
(an address target only), `port`, `localport`/`myport`, `myportname`, `method`, `dstdomain`,
`dstdom_regex`, `url_regex` (a CONNECT's URL is `host:port`), `urlpath_regex` (none), `ssl::server_name`
(the CONNECT host), `ssl::server_name_regex`, `proxy_auth`/`proxy_auth_regex` (with the meter's user,
assumed to log in; without one: a 407 challenge), `any-of`, `all-of`. Any other type (time, external
helpers, headers, ...) is undecided: a rule with an undecided ACL is assumed not to let the meter
through (an `allow` does not match, a `deny` does), which is how the meter's refusals are explained,
and the decision says it was assumed. The same evaluation serves `delay_access` (who is shaped).
Squid's POSIX regular expressions are read as Python's, which agree on the patterns used for hosts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from proxy_lab.productconf.model import Directive, ProductConfig
from proxy_lab.productconf.squid_parse import file_token

Tri = bool | None  # True, False, or undecided
Action = Literal["allow", "deny", "auth"]

_PREDEFINED: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("src", ("all",)),
    "localhost": ("src", ("127.0.0.1/32", "::1")),
    "to_localhost": ("dst", ("127.0.0.0/8", "0.0.0.0/32", "::/128", "::1/128")),
    "CONNECT": ("method", ("CONNECT",)),
    "manager": ("url_regex", (r"^cache_object://", r"^https?://[^/]+/squid-internal-mgr/")),
}
_AUTH = "auth"  # an ACL that needs the meter's credentials it does not have


@dataclass(frozen=True)
class Request:
    """The meter's CONNECT as the proxy sees it."""

    src: str
    host: str
    port: int
    local_port: int  # the proxy port the meter is set to
    local_port_name: str = ""
    user: str | None = None  # proxy username the meter sends (None: no credentials)
    method: str = "CONNECT"


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: Directive | None  # None: no rule matched, the default applied
    assumed: tuple[str, ...] = ()  # ACLs that could not be decided and were assumed

    @property
    def allowed(self) -> bool:
        return self.action == "allow"


@dataclass(frozen=True)
class Acl:
    name: str
    type: str
    values: tuple[str, ...]


def acls(model: ProductConfig) -> dict[str, Acl]:
    """Every ACL of the configuration (predefined ones included), values from files read in."""
    out = {name: Acl(name, t, v) for name, (t, v) in _PREDEFINED.items()}
    for d in model.named("acl"):
        if len(d.args) < 2:
            continue
        name, kind = d.args[0], d.args[1]
        values: list[str] = []
        for tok in d.args[2:]:
            path = file_token(tok, d.quoted_values)
            if path is not None:
                values += model.file_values.get(path, ())
            else:
                values.append(tok.strip("\"'") if d.quoted_values else tok)
        prior = out.get(name)
        if prior is not None and name not in _PREDEFINED:
            out[name] = Acl(name, prior.type, prior.values + tuple(values))
        else:
            out[name] = Acl(name, kind, tuple(values))
    return out


def _ip_in(value: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Tri:
    """Squid `src`/`dst` value (address, CIDR, address/netmask, range a-b[/mask], all)."""
    if value == "all":
        return True
    try:
        if "-" in value:
            lo, _, hi = value.partition("-")
            hi = hi.split("/")[0]
            return ipaddress.ip_address(lo) <= addr <= ipaddress.ip_address(hi)  # type: ignore[operator]
        return addr in ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        return None  # a host name: Squid resolves it


def _domain(values: Sequence[str], host: str) -> bool:
    host = host.lower().rstrip(".")
    for v in values:
        v = v.lower()
        if v.startswith("."):
            if host == v[1:] or host.endswith(v):
                return True
        elif host == v:
            return True
    return False


def _regex(values: Sequence[str], subject: str) -> Tri:
    flags = 0
    for v in values:
        if v == "-i":
            flags = re.IGNORECASE
            continue
        if v == "+i":
            flags = 0
            continue
        try:
            if re.search(v, subject, flags):
                return True
        except re.error:
            return None
    return False


def _strip_flags(values: tuple[str, ...], flags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in values if v not in flags and not v.startswith("--"))


def _match(acl: Acl, req: Request, table: dict[str, Acl], depth: int = 0) -> Tri | str:
    t, vals = acl.type, acl.values
    if t == "src":
        try:
            addr = ipaddress.ip_address(req.src)
        except ValueError:
            return None
        results = [_ip_in(v, addr) for v in _strip_flags(vals, ("-n",))]
        return True if any(r is True for r in results) else (None if None in results else False)
    if t == "dst":
        try:
            addr = ipaddress.ip_address(req.host.strip("[]"))
        except ValueError:
            return None  # Squid would resolve the host: the lab's answer is not known here
        return any(_ip_in(v, addr) is True for v in _strip_flags(vals, ("-n",)))
    if t in ("port", "localport", "myport"):
        port = req.port if t == "port" else req.local_port
        for v in vals:
            lo, _, hi = v.partition("-")
            if lo.isdigit() and (hi.isdigit() or not hi) and int(lo) <= port <= int(hi or lo):
                return True
        return False
    if t == "myportname":
        return req.local_port_name in vals
    if t == "method":
        return req.method in vals
    if t in ("dstdomain", "ssl::server_name"):
        return _domain(_strip_flags(vals, ("-n", "-i")), req.host)
    if t in ("dstdom_regex", "ssl::server_name_regex"):
        return _regex(_strip_flags(vals, ("-n",)), req.host)
    if t == "url_regex":
        return _regex(vals, f"{req.host}:{req.port}")
    if t == "urlpath_regex":
        return _regex(vals, "")
    if t in ("proxy_auth", "proxy_auth_regex"):
        if req.user is None:
            return _AUTH
        if t == "proxy_auth":
            return "REQUIRED" in vals or req.user.lower() in (v.lower() for v in vals)
        return _regex(vals, req.user)
    if t in ("any-of", "all-of") and depth < 16:
        parts = [_match(table[v], req, table, depth + 1) if v in table else None for v in vals]
        if t == "any-of":
            return True if True in parts else (None if None in parts or _AUTH in parts else False)
        return False if False in parts else (None if None in parts or _AUTH in parts else True)
    return None


def rule_matches(words: Sequence[str], req: Request, table: dict[str, Acl]) -> tuple[Tri | str, tuple[str, ...]]:
    """Whether every ACL of a rule matches (True/False/None/"auth") and which were undecided."""
    result: Tri | str = True
    undecided: list[str] = []
    for word in words:
        negate = word.startswith("!")
        name = word[1:] if negate else word
        acl = table.get(name)
        m = _match(acl, req, table) if acl is not None else None
        if m is None:
            undecided.append(name)
        elif isinstance(m, bool) and negate:
            m = not m
        if m is False:
            return False, tuple(undecided)
        if m == _AUTH and result is not None:
            result = _AUTH
        elif m is None:
            result = None
    return result, tuple(undecided)


def decide(rules: Sequence[Directive], req: Request, table: dict[str, Acl]) -> Decision:
    """The first rule (`allow|deny acl...`) that decides `req`; undecided ACLs are taken the way that
    keeps the meter out."""
    assumed: list[str] = []
    for d in rules:
        if not d.args or d.args[0] not in ("allow", "deny"):
            continue
        m, undecided = rule_matches(d.args[1:], req, table)
        assumed += undecided
        if m is True or (m is None and d.args[0] == "deny"):
            return Decision(d.args[0], d, tuple(assumed))  # type: ignore[arg-type]
        if m == _AUTH:
            return Decision("auth", d, tuple(assumed))
    real = [d for d in rules if d.args and d.args[0] in ("allow", "deny")]
    default: Action = "deny" if not real or real[-1].args[0] == "allow" else "allow"
    return Decision(default, None, tuple(assumed))


def http_access(model: ProductConfig, req: Request) -> Decision:
    return decide(model.named("http_access"), req, acls(model))
