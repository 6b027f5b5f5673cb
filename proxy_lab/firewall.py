"""The lab firewall: a site firewall's stand-in between the meter (direct mode, no proxy) and the cloud.

`proxy-lab check --lab --direct --fault NAME` runs the meter without a proxy through this firewall.
It sits on loopback in front of every cloud listener and answers per destination port, as a site
firewall's rules do:

- allowed ports: a TCP relay to the cloud listener (and a UDP relay for DNS);
- `drop_ports`: a listener whose accept queue is kept full, so the kernel drops every new SYN and the
  meter's connect times out (a firewall's DROP: "silently dropped");
- `reset_ports`: a port bound but not listening, so the kernel answers the SYN with a TCP reset
  (a firewall's REJECT with tcp-reset: the meter sees "connection refused");
- `dns_tcp` / `dns_udp`: the same for the meter's DNS to 8.8.8.8:53 over TCP (drop or reset) and
  UDP (drop: the datagram is read and never answered);
- `tls_intercept`: port 443 reaches a transparent appliance that re-signs TLS with the lab's
  corporate inspection CA (`proxy_lab.firewall_tls`).

`FirewallRules.from_faults` reads the rules from `--fault` items and rejects bad ones with the fault,
the key and what was expected. `LabFirewall.resolver` maps the catalog's (host, port) to the
firewall's front for that port, so the meter's direct connections cross it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from proxy_lab.errors import ConfigError
from proxy_lab.firewall_tls import InterceptingFront
from proxy_lab.pki import PKI
from proxy_lab.resolver import Address, MapResolver
from proxy_lab.tasks import create_task

DNS_PORT = 53
RULED_PORTS = (80, 443, 5228, 5938)  # the catalog's TCP ports (Guide, Ports; 5228 Device Management)
_RELAY_READ = 65536

# fault name -> (its settings, with their type and default, and one sentence for `--fault` errors)
FIREWALL_FAULTS: dict[str, tuple[dict[str, Any], str]] = {
    "drop_ports": ({"ports": [5938]}, "TCP connections to these ports are silently dropped (no answer to the SYN)"),
    "reset_ports": ({"ports": [5938]}, "TCP connections to these ports are rejected with a TCP reset"),
    "dns_tcp": ({"action": "reset"}, "DNS over TCP to 8.8.8.8:53 is blocked: action 'reset' or 'drop'"),
    "dns_udp": ({"action": "drop"}, "DNS over UDP to 8.8.8.8:53 is dropped: action 'drop'"),
    "tls_intercept": ({}, "TLS to port 443 is re-signed by a transparent appliance (the lab's corporate inspection CA)"),
}


def describe_firewall_faults() -> str:
    return "; ".join(f"{n}:{','.join(f'{k}={v!r}' for k, v in s.items())} ({d})" for n, (s, d) in FIREWALL_FAULTS.items())


@dataclass(frozen=True)
class FirewallRules:
    """What the site firewall does to the meter's direct traffic, per destination port."""

    drop_ports: frozenset[int] = frozenset()
    reset_ports: frozenset[int] = frozenset()
    dns_tcp: Literal["allow", "drop", "reset"] = "allow"
    dns_udp: Literal["allow", "drop"] = "allow"
    tls_intercept: bool = False
    names: tuple[str, ...] = field(default=(), compare=False)  # the faults it was made from, for the report

    def __post_init__(self) -> None:
        if both := sorted(self.drop_ports & self.reset_ports):
            raise ConfigError(f"firewall: port(s) {both} are both dropped and reset; choose one")

    def action(self, port: int) -> Literal["allow", "drop", "reset"]:
        if port in self.drop_ports:
            return "drop"
        if port in self.reset_ports:
            return "reset"
        return "allow"

    @classmethod
    def from_faults(cls, faults: Iterable[tuple[str, dict[str, Any]]]) -> FirewallRules:
        """The rules of `--fault` items such as `drop_ports:ports=[5938]` or `dns_tcp:action=reset`."""
        drop: set[int] = set()
        reset: set[int] = set()
        dns: dict[str, str] = {"dns_tcp": "allow", "dns_udp": "allow"}
        names: list[str] = []
        intercept = False
        for name, given in faults:
            if name not in FIREWALL_FAULTS:
                raise ConfigError(
                    f"--fault {name!r} is not a firewall fault of the lab (with --direct); "
                    f"expected one of: {describe_firewall_faults()}"
                )
            defaults, _ = FIREWALL_FAULTS[name]
            if unknown := sorted(set(given) - set(defaults)):
                raise ConfigError(f"--fault {name}: unknown setting(s) {unknown}; expected {', '.join(defaults)}")
            settings = {**defaults, **given}
            names.append(name)
            if name in ("drop_ports", "reset_ports"):
                ports = settings["ports"]
                if not isinstance(ports, list) or not ports or not all(isinstance(p, int) and p in RULED_PORTS for p in ports):
                    raise ConfigError(
                        f"--fault {name}: ports={ports!r}; expected a list of some of {list(RULED_PORTS)} "
                        "(port 53: use dns_tcp or dns_udp)"
                    )
                (drop if name == "drop_ports" else reset).update(ports)
            elif name == "tls_intercept":
                intercept = True
            else:
                allowed = ("reset", "drop") if name == "dns_tcp" else ("drop",)
                if settings["action"] not in allowed:
                    raise ConfigError(f"--fault {name}: action={settings['action']!r}; expected one of {list(allowed)}")
                dns[name] = settings["action"]
        return cls(frozenset(drop), frozenset(reset), dns["dns_tcp"], dns["dns_udp"], intercept, tuple(names))  # type: ignore[arg-type]


class _UdpDrop(asyncio.DatagramProtocol):
    """Reads every datagram and answers none."""


class _UdpRelay(asyncio.DatagramProtocol):
    """Relays each client's datagrams to `upstream` and the answers back, one upstream socket per query."""

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        create_task(self._relay(data, addr), name=f"firewall udp relay for {addr}")

    async def _relay(self, data: bytes, client: Any) -> None:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class _Back(asyncio.DatagramProtocol):
            def datagram_received(self, d: bytes, a: Any) -> None:
                if not answer.done():
                    answer.set_result(d)

        transport, _ = await loop.create_datagram_endpoint(_Back, remote_addr=self.upstream)
        try:
            transport.sendto(data)
            reply = await asyncio.wait_for(answer, 10.0)
            if self.transport is not None:
                self.transport.sendto(reply, client)
        except (TimeoutError, OSError):
            pass  # a lost datagram, as on any UDP path
        finally:
            transport.close()


class LabFirewall:
    """The firewall in front of a lab cloud: `async with LabFirewall(rules, lab.resolver) as fw:`,
    then give the meter `fw.resolver`."""

    def __init__(self, rules: FirewallRules, upstream: MapResolver, host: str = "127.0.0.1", pki: PKI | None = None) -> None:
        if rules.tls_intercept and pki is None:
            raise ConfigError("firewall: tls_intercept needs the lab's PKI (its corporate inspection CA)")
        self.rules = rules
        self.pki = pki
        self._intercepting: list[InterceptingFront] = []
        self.upstream = upstream
        self.host = host
        self.resolver = MapResolver()
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[socket.socket] = []  # black hole, its fillers, closed ports
        self._udp: list[asyncio.BaseTransport] = []
        self._relays: dict[Address, Address] = {}

    async def __aenter__(self) -> LabFirewall:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        for server in self._servers:
            server.close()
            abort_clients = getattr(server, "abort_clients", None)  # Python >= 3.13
            if abort_clients is not None:
                abort_clients()
        for t in self._udp:
            t.close()
        for front in self._intercepting:
            front.close()
        for s in self._sockets:
            s.close()
        self._servers, self._udp, self._sockets = [], [], []

    # -- fronts -----------------------------------------------------------------------------------
    def _black_hole(self, port: int = 0) -> Address:
        """A listener whose accept queue is full: the kernel drops further SYNs (Linux
        `tcp_conn_request`: a full accept queue drops the SYN), so a connect times out."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.host, port))
        s.listen(0)
        self._sockets.append(s)
        address: Address = s.getsockname()[:2]
        for _ in range(2):  # backlog 0 holds one connection; the queue is then full
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(address)
            self._sockets.append(filler)
        return address

    def _closed_port(self, port: int = 0) -> Address:
        """A port bound but not listening: the kernel answers a SYN there with a reset."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((self.host, port))
        self._sockets.append(s)
        return s.getsockname()[:2]

    async def _relay_to(self, upstream: Address, port: int = 0) -> Address:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*upstream), 10.0)
            except (OSError, TimeoutError):
                writer.close()
                return
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                up_writer.close()
                writer.close()

        server = await asyncio.start_server(handle, self.host, port)
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    async def _intercept(self, upstream: Address) -> Address:
        assert self.pki is not None
        front = InterceptingFront(self.pki, upstream, _pump)
        self._intercepting.append(front)
        server = await asyncio.start_server(front.handle, self.host, 0, ssl=front.listener_context())
        self._servers.append(server)
        return server.sockets[0].getsockname()[:2]

    async def _dns_front(self, upstream: Address) -> Address:
        """One port for both ways of DNS: UDP relayed or dropped, TCP relayed, dropped or reset."""
        loop = asyncio.get_running_loop()
        for _ in range(20):
            protocol = _UdpDrop if self.rules.dns_udp == "drop" else (lambda: _UdpRelay(upstream))
            transport, _ = await loop.create_datagram_endpoint(protocol, local_addr=(self.host, 0))
            port = transport.get_extra_info("sockname")[1]
            try:
                if self.rules.dns_tcp == "drop":
                    self._black_hole(port)
                elif self.rules.dns_tcp == "reset":
                    self._closed_port(port)
                else:
                    await self._relay_to(upstream, port)
            except OSError:
                transport.close()
                continue
            self._udp.append(transport)
            return (self.host, port)
        raise OSError(f"lab firewall: no port on {self.host} free for both TCP and UDP")

    async def _start(self) -> None:
        fronts: dict[tuple[str, Address], Address] = {}
        for (host, port), upstream in self.upstream.table.items():
            if port is None:
                continue
            if port == DNS_PORT:
                key = ("dns", upstream)
                if key not in fronts:
                    fronts[key] = await self._dns_front(upstream)
            else:
                action = self.rules.action(port)
                key = (action, upstream if action == "allow" else ("", 0))
                if action == "allow" and port == 443 and self.rules.tls_intercept:
                    key = ("intercept", upstream)
                if key not in fronts:
                    fronts[key] = (
                        await self._intercept(upstream) if key[0] == "intercept"
                        else await self._relay_to(upstream) if action == "allow"
                        else self._black_hole() if action == "drop" else self._closed_port()
                    )  # fmt: skip
            self.resolver.add(host, port, fronts[key])


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_RELAY_READ):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:  # a reset on one side is passed on as a reset
        writer.transport.abort()
