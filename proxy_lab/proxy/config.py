"""The lab proxy's configuration: `ProxyConfig`, every setting with its default and unit, checked when made.

A bad value raises ConfigError naming the setting and what was expected; `check_exposure` refuses
to become an open proxy (a non-loopback listen address with no users and no `allow_open`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.chain import UpstreamProxy
from proxy_lab.proxy.faults.base import Fault
from proxy_lab.proxy.watch import TunnelWatcher


@dataclass
class ProxyConfig:
    """Everything the lab proxy is told; validated when made (ConfigError names the field)."""

    listen: tuple[str, int] = ("127.0.0.1", 0)
    users: dict[str, str] = field(default_factory=dict)  # name -> password; empty = no auth
    realm: str = "proxy-lab"
    username_case_sensitive: bool = True
    accept_lowercase_basic: bool = True  # False: only `Basic` (some proxies reject `basic`)
    close_after_407: bool = False  # True: 407 carries Connection: close and the proxy closes
    faults: list[Fault] = field(default_factory=list)
    max_request_line: int = 8192  # bytes; longer -> 414
    max_header_bytes: int = 32768  # bytes; larger head -> 431
    header_timeout_s: float = 10.0  # no complete head in time -> 408 and close (slowloris)
    connect_timeout_s: float = 10.0  # per upstream address; then 504 (Squid ERR_CONNECT_FAIL)
    max_connections: int = 4096  # open client connections; beyond -> 503
    max_requests_per_connection: int = 100  # bounds the 407 retry loop on one connection
    allow_open: bool = False  # a non-loopback listen address without users refuses to start unless True
    # The plain path (proxy_lab/proxy/plainpath.py): requests that no fault, refusal or slow resolver
    # concerns are set up and relayed on bare sockets by a thread of the proxy's own, with the same
    # answers, records and counters as the general path. On for `proxy-lab proxy` and the bench, where
    # setups per second matter; off (the default) for every embedded proxy (scenario runs, `check
    # --lab`, the pytest plugin), so a verdict never depends on which relay carried a tunnel.
    plain_path: bool = False
    # Processes serving the listening socket under `run_proxy` (the CLI; embedded proxies are one
    # asyncio server). 0 = automatic: one per CPU core, at most 4, when no fault is configured (a
    # fault may keep state across connections), else 1.
    workers: int = 0
    # Linux, with the plain path: accept a connection only once its first bytes are in
    # (TCP_DEFER_ACCEPT, as Squid's `accept_filter data` and nginx's `listen ... deferred`): one
    # wake-up per setup instead of two. A client that connects and stays silent is then held by the
    # kernel, not the proxy, for a second or so before it is accepted, counted against
    # max_connections and timed for its head.
    defer_accept: bool = True
    # Linux, `run_proxy` with several workers: each worker runs on a CPU of its own, and while they
    # are lightly loaded a new connection goes to the worker on the CPU that received it
    # (proxy_lab/proxy/steering.py). False: workers float, and the kernel's hash spreads connections.
    cpu_affinity: bool = True
    # -- chaining and recording (proxy_lab/proxy/chain.py, proxy_lab/record/) --
    # Every tunnel opened through this proxy (no target name resolved here); from TOML or JSON its URL.
    upstream: UpstreamProxy | None = None
    watcher: TunnelWatcher | None = None  # sees every tunnel and refusal (the recorder); one worker then

    def __post_init__(self) -> None:
        if isinstance(self.listen, list):  # from TOML or JSON
            self.listen = tuple(self.listen)  # type: ignore[assignment]
        if not (isinstance(self.listen, tuple) and len(self.listen) == 2 and isinstance(self.listen[1], int)):
            raise ConfigError(f"proxy listen: {self.listen!r}: expected (host, port)")
        if not 0 <= self.listen[1] < 65536:
            raise ConfigError(f"proxy listen: port {self.listen[1]} outside 0-65535")
        for name in self.users:
            if not name or ":" in name:
                raise ConfigError(
                    f"proxy users: user name {name!r} must be non-empty and contain no ':' (RFC 7617)"
                )
        if any(ord(c) < 0x20 or c == "\x7f" for c in self.realm):
            raise ConfigError(f"proxy realm {self.realm!r}: control characters are not allowed")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"proxy workers: {self.workers!r}: expected 0 (automatic) or a number of processes")
        for key in ("max_request_line", "max_header_bytes", "max_connections", "max_requests_per_connection"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"proxy {key}: {getattr(self, key)!r}: expected a positive number")
        if not isinstance(self.plain_path, bool):
            raise ConfigError(f"proxy plain_path: {self.plain_path!r}: expected true or false")
        for key in ("header_timeout_s", "connect_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"proxy {key}: {getattr(self, key)!r}: expected seconds > 0")
        if isinstance(self.upstream, str):  # from TOML or JSON: the URL
            self.upstream = UpstreamProxy.parse(self.upstream)
        if self.upstream is not None and not isinstance(self.upstream, UpstreamProxy):
            raise ConfigError(f"proxy upstream: {self.upstream!r}: expected an UpstreamProxy (UpstreamProxy.parse)")
        for f in self.faults:
            if not isinstance(f, Fault):
                raise ConfigError(f"proxy faults: {f!r} is not a Fault (build faults with make_fault)")

    def check_exposure(self) -> None:
        """Refuse to become an open proxy: a non-loopback listen address needs users or allow_open."""
        host = self.listen[0]
        if _is_loopback(host) or self.users or self.allow_open:
            return
        raise ConfigError(
            f"proxy listen {host}:{self.listen[1]} is not a loopback address and no users are configured: "
            "that is an open proxy; add users or set allow_open"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
