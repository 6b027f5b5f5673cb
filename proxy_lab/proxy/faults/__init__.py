"""The lab proxy's faults: deliberate misbehaviours copied from real proxies, one small class per module.

Adding a fault
--------------
Write `proxy_lab/proxy/faults/<name>.py` and import it at the end of this file (the fault registers
itself when its module is imported; tests/proxy/faults/test_registry.py fails for a module
left out)::

    @dataclass(kw_only=True)
    class Throttle(Fault, name="throttle"):
        \"\"\"Limits each tunnel's throughput to rate_kbps in each direction.\"\"\"

        rate_kbps: int = field(default=384, metadata=doc("throughput cap per direction", "kbit/s"))

        def stream(self, ctx: Ctx) -> Stage | None:
            return _ThrottleStage(self.rate_kbps)

Settings are dataclass fields with `metadata=doc(help, unit)`; their names carry the unit
(`delay_ms`, `after_bytes`). `make_fault(name, settings)` validates keys and types and raises
`ConfigError` naming the fault, the key and what was expected; `__post_init__` checks values
(raise ValueError: it becomes a ConfigError). Every fault also has `hosts` (fnmatch patterns) and
`ports` to scope it; the server only calls hooks for requests in scope.

The hooks, in the order the server calls them for one client connection
------------------------------------------------------------------------
1. `async handle_client(conn) -> bool` - before anything is parsed; return True after taking over
   the whole connection (socks_only: speak SOCKS, then `await conn.tunnel(conn.new_ctx(h, p), answer)`).
2. `on_auth(ctx, answer) -> Refusal | None` - after the Basic check; `answer` is None (let through)
   or the proxy's 407; return it, None, or another Refusal (auth_schemes, challenge_style).
3. `async on_connect(ctx) -> Refusal | None` - refuse by policy (allow_ports, exclusions, deny_hosts,
   allow_hosts). A Refusal is a status answer, or `action="close"` / `"reset"` (SO_LINGER 0).
4. `async resolve(ctx, host, port, next) -> [(ip, port)]` - middleware around the Resolver; raise
   `Refuse(refusal)` to answer instead (dns_fail), or reorder/add addresses (ipv6_broken).
5. `async open_upstream(ctx, host, port, next) -> socket` - middleware around "resolve, then connect
   to each address in turn"; return any connected non-blocking socket (tls_inspect: via mitmproxy;
   a fault may also answer itself by returning one end of `socket.socketpair()` and serving the other).
6. `established_response(ctx, head) -> bytes` - rewrite `HTTP/1.1 200 Connection established\\r\\n\\r\\n`
   (connect_quirks: 204, framing headers, bytes after the head, HTTP/1.0).
7. `stream(ctx) -> Stage | None` - a per-tunnel data stage (throttle, latency, reset_after,
   idle_timeout, tamper, block_page): async `client_to_upstream(data)` / `upstream_to_client(data)`
   transforms, `at_eof(direction)`, a background `run()`, and `self.tunnel` (TunnelControl: byte
   counters, `send`, `flush`, `close`, `reset`). Directions no stage inspects stay on the fast path.

Hooks of several faults chain in the order the faults are configured. The test module
tests/proxy/test_hooks.py shows each hook used by a minimal unregistered fault.
"""

from __future__ import annotations

# Every fault module, imported here so that each registers itself: the registry is filled by the
# package, and `base` never imports the package back.
from proxy_lab.proxy.faults import (
    allow_hosts,
    allow_ports,
    auth_schemes,
    block_page,
    challenge_style,
    connect_quirks,
    deny_hosts,
    dns_fail,
    exclusions,
    idle_timeout,
    ipv6_broken,
    latency,
    reset_after,
    socks_only,
    tamper,
    throttle,
    tls_inspect,
)
from proxy_lab.proxy.faults.base import (
    DIRECTIONS,
    FAULTS,
    AnswerFn,
    ClientConn,
    Ctx,
    Direction,
    Fault,
    LabServices,
    OpenNext,
    Refuse,
    ResolveNext,
    Stage,
    TunnelControl,
    describe_faults,
    doc,
    load_all,
    make_fault,
)

FAULT_MODULES = (
    allow_hosts, allow_ports, auth_schemes, block_page, challenge_style, connect_quirks, deny_hosts, dns_fail,
    exclusions, idle_timeout, ipv6_broken, latency, reset_after, socks_only, tamper, throttle, tls_inspect,
)  # fmt: skip

__all__ = [
    "DIRECTIONS",
    "FAULTS",
    "FAULT_MODULES",
    "AnswerFn",
    "ClientConn",
    "Ctx",
    "Direction",
    "Fault",
    "LabServices",
    "OpenNext",
    "Refuse",
    "ResolveNext",
    "Stage",
    "TunnelControl",
    "describe_faults",
    "doc",
    "load_all",
    "make_fault",
]
