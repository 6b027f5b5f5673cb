"""The Cloud: the simulated SendPro back end, every catalog endpoint served from one asyncio process.

Few listeners serve all ~95 hosts:
- "https": one TLS listener; the certificate is chosen by SNI (`proxy_lab.cloud.tls`; no SNI or
  an unknown name fails the handshake with `unrecognized_name`);
- "http": one plain listener for every port-80 host, routed by `Host`;
- "tcp:<port>": one raw listener per raw port of the catalog (5938 TeamViewer-like, 5228 mtalk);
- "dns": DNS over UDP and TCP on one port, standing in for 8.8.8.8:53.

`Cloud.resolver` maps every catalog `(host, port)` to the listener that really serves it, so the
lab proxy and the device never touch the system resolver. `Cloud.state` records what arrived and
holds the run-time knobs (`drop_receipts`, `corrupt_downloads`, `download_bytes`, `dns_nxdomain`,
`dns_servfail`). Messages are docs/cloud-protocol.md's, built and parsed by
`proxy_lab.protocol.messages`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.cloud.conn import Connections
from proxy_lab.cloud.dns import DnsTcp, DnsUdp, DnsZone
from proxy_lab.cloud.files import MAX_DOWNLOAD_BYTES, FileStore, SignedFile
from proxy_lab.cloud.rawtcp import RAW_EXCHANGES, RawTcpConnection
from proxy_lab.cloud.routes import CloudApp
from proxy_lab.cloud.server import HttpConnection
from proxy_lab.cloud.state import CloudSettings, CloudState
from proxy_lab.cloud.tls import SniContexts
from proxy_lab.errors import ConfigError
from proxy_lab.pki import PKI
from proxy_lab.resolver import Address, MapResolver, is_ip
from proxy_lab.tasks import Service

__all__ = ["Cloud", "CloudSettings", "CloudState"]

log = logging.getLogger("proxy_lab.cloud")

_DNS_PORT_TRIES = 20  # ephemeral TCP port that is also free for UDP
_STOP_WAIT_S = 5.0


class Cloud(Service):
    """The simulated back end. `async with Cloud(pki) as cloud:` binds ephemeral ports on `host`.

    `bind` overrides the listen address of chosen listener kinds (namespace mode), e.g.
    `{"https": ("10.200.0.1", 443), "http": ("10.200.0.1", 80), "dns": ("10.200.0.1", 53)}`.
    """

    def __init__(
        self,
        pki: PKI,
        catalog: Catalog | None = None,
        *,
        host: str = "127.0.0.1",
        download_bytes: int = 48 * 1024,
        bind: dict[str, tuple[str, int]] | None = None,
        seed: int = 0,
        idle_timeout_s: float = 30.0,
        tls_handshake_timeout_s: float = 10.0,
    ) -> None:
        if not 0 <= download_bytes <= MAX_DOWNLOAD_BYTES:
            raise ConfigError(f"download_bytes {download_bytes} is outside 0..{MAX_DOWNLOAD_BYTES}")
        if idle_timeout_s <= 0:
            raise ConfigError(f"idle_timeout_s {idle_timeout_s} must be > 0")
        self.pki = pki
        self.catalog = catalog or load_catalog()
        self.host = host
        self.seed = seed
        self.idle_timeout_s = idle_timeout_s
        self.tls_handshake_timeout_s = tls_handshake_timeout_s
        self.state = CloudState(download_bytes=download_bytes)
        self.resolver = MapResolver()
        self.ports: dict[str, int] = {}
        self.addresses: dict[str, Address] = {}

        endpoints = [e for s in self.catalog.services.values() for e in s.endpoints]
        self._raw: dict[int, str] = {}
        for ep in endpoints:
            if ep.transport == "tcp":
                if ep.exchange not in RAW_EXCHANGES:
                    raise ConfigError(
                        f"catalog: {ep.url} is raw TCP; its exchange must be one of {RAW_EXCHANGES}"
                    )
                if self._raw.setdefault(ep.port, ep.exchange) != ep.exchange:
                    raise ConfigError(f"catalog: raw TCP port {ep.port} has two exchanges")
        kinds: list[str] = []
        if any(e.transport == "tls" for e in endpoints):
            kinds.append("https")
        if any(e.transport == "http" for e in endpoints):
            kinds.append("http")
        kinds += [f"tcp:{p}" for p in sorted(self._raw)]
        kinds.append("dns")
        self.kinds: tuple[str, ...] = tuple(kinds)
        self.bind: dict[str, tuple[str, int]] = dict(bind or {})
        if unknown := sorted(set(self.bind) - set(self.kinds)):
            raise ConfigError(
                f"bind: unknown listener kind(s) {unknown}; expected some of {list(self.kinds)}"
            )

        self._tls = SniContexts(pki, self.catalog.hosts("tls"))
        self._files: FileStore | None = None
        self._app: CloudApp | None = None
        self._connections = Connections()
        self._servers: list[asyncio.AbstractServer] = []
        self._udp: list[asyncio.DatagramTransport] = []
        self.zone: DnsZone | None = None
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the TLS contexts and signed files, bind every listener, fill the resolver."""
        if self.started:
            raise RuntimeError("cloud already started")
        self.started = True
        try:
            await asyncio.to_thread(self._prepare)
            for kind in self.kinds:
                await self._start_listener(kind)
        except BaseException:
            await self.stop()
            raise
        self._fill_resolver()
        log.debug("cloud listening: %s", self.addresses)

    async def stop(self) -> None:
        """Close every listener and abort every open connection; idempotent."""
        servers, self._servers = self._servers, []
        udp, self._udp = self._udp, []
        for server in servers:
            server.close()
            abort_clients = getattr(server, "abort_clients", None)  # Python >= 3.13
            if abort_clients is not None:
                abort_clients()
        self._connections.abort_all()
        for transport in udp:
            transport.close()
        for server in servers:
            try:
                await asyncio.wait_for(server.wait_closed(), _STOP_WAIT_S)
            except TimeoutError:
                log.warning("cloud: a listener still had connections %.0f s after stop()", _STOP_WAIT_S)
        self.started = False

    def _prepare(self) -> None:
        self._tls.build()
        if self._files is None:
            self._files = FileStore(self.pki.signing_key(), self.seed)
        self._files.files(self.state.download_bytes)
        if self._app is None:
            self._app = CloudApp(self.catalog, self.state, self._files)

    @property
    def download_bytes(self) -> int:
        """Size of every downloadable file; setting it takes effect on the next download (the files
        of a new size are made and signed then; `set_download_bytes` does it ahead, off the loop)."""
        return self.state.download_bytes

    @download_bytes.setter
    def download_bytes(self, size: int) -> None:
        if not 0 <= size <= MAX_DOWNLOAD_BYTES:
            raise ConfigError(f"download_bytes {size} is outside 0..{MAX_DOWNLOAD_BYTES}")
        self.state.download_bytes = size

    def configure(self, settings: CloudSettings) -> None:
        """Set the run-time knobs for one run (a scenario's `[cloud]` table); `reset()` undoes it."""
        self.download_bytes = settings.download_bytes
        self.state.drop_receipts = settings.drop_receipts
        self.state.corrupt_downloads = settings.corrupt_downloads

    def reset(self) -> None:
        """Every knob back to its default and everything received forgotten (between runs and tests)."""
        self.state.reset()

    async def set_download_bytes(self, size: int) -> None:
        """Change the size of every download, generating and signing the files off the event loop."""
        if not 0 <= size <= MAX_DOWNLOAD_BYTES:
            raise ConfigError(f"download_bytes {size} is outside 0..{MAX_DOWNLOAD_BYTES}")
        if self._files is not None:
            await asyncio.to_thread(self._files.files, size)
        self.state.download_bytes = size

    # -- listeners --------------------------------------------------------------------------------
    def _listen_on(self, kind: str) -> tuple[str, int]:
        return self.bind.get(kind, (self.host, 0))

    async def _start_listener(self, kind: str) -> None:
        loop = asyncio.get_running_loop()
        host, port = self._listen_on(kind)
        app, registry, idle = self._app, self._connections, self.idle_timeout_s
        assert app is not None
        try:
            if kind == "https":
                server = await loop.create_server(
                    lambda: HttpConnection(app, "https", registry, idle, self._tls),
                    host,
                    port,
                    ssl=self._tls.listener_context(),
                    ssl_handshake_timeout=self.tls_handshake_timeout_s,
                    # a client that never answers our close_notify holds the socket this long at most
                    ssl_shutdown_timeout=self.tls_handshake_timeout_s,
                    backlog=1024,
                )
            elif kind == "http":
                server = await loop.create_server(
                    lambda: HttpConnection(app, "http", registry, idle), host, port, backlog=1024
                )
            elif kind.startswith("tcp:"):
                exchange = self._raw[int(kind[4:])]
                server = await loop.create_server(
                    lambda: RawTcpConnection(exchange, kind, self.state, registry, idle),
                    host,
                    port,
                    backlog=1024,
                )
            else:
                await self._start_dns(host, port)
                return
        except OSError as exc:
            raise OSError(
                exc.errno, f"cloud {kind} listener cannot bind {host}:{port}: {exc.strerror or exc}"
            ) from exc
        self._servers.append(server)
        self._record(kind, server.sockets[0].getsockname())

    async def _start_dns(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        zone = DnsZone(self._dns_names(), self._answer_address(host), self.state)
        self.zone = zone
        registry, idle = self._connections, self.idle_timeout_s
        for _ in range(_DNS_PORT_TRIES):
            server = await loop.create_server(lambda: DnsTcp(zone, registry, idle), host, port, backlog=1024)
            bound = server.sockets[0].getsockname()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: DnsUdp(zone), local_addr=(host, bound[1])
                )
            except OSError:
                server.close()
                await server.wait_closed()
                if port != 0:
                    raise
                continue
            self._servers.append(server)
            self._udp.append(transport)
            self._record("dns", bound)
            return
        raise OSError(
            f"cloud dns listener: no port on {host} free for both TCP and UDP after {_DNS_PORT_TRIES} tries"
        )

    def _record(self, kind: str, sockname: tuple[str, int] | tuple[str, int, int, int]) -> None:
        addr, port = str(sockname[0]), int(sockname[1])
        if addr in ("0.0.0.0", "::"):
            addr = "127.0.0.1" if addr == "0.0.0.0" else "::1"
        self.ports[kind] = port
        self.addresses[kind] = (addr, port)

    def _dns_names(self) -> list[str]:
        names = [h for h in self.catalog.hosts() if not is_ip(h)]
        names += [
            e.path.strip("/")
            for s in self.catalog.services.values()
            for e in s.endpoints
            if e.transport == "dns"
        ]
        return names

    def _answer_address(self, dns_host: str) -> str:
        """The IPv4 address DNS answers with: where the HTTPS listener is bound."""
        for candidate in (self._listen_on("https")[0], self.host, dns_host):
            try:
                ip = ipaddress.ip_address(candidate)
            except ValueError:
                continue
            if ip.version == 4 and not ip.is_unspecified:
                return candidate
        return "127.0.0.1"

    def _fill_resolver(self) -> None:
        table = self.resolver.table
        table.clear()
        for s in self.catalog.services.values():
            for ep in s.endpoints:
                kind = {"tls": "https", "http": "http", "dns": "dns"}.get(ep.transport, f"tcp:{ep.port}")
                table[(ep.host, ep.port)] = self.addresses[kind]

    # -- introspection ----------------------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return len(self._connections)

    @property
    def dns_address(self) -> Address:
        return self.addresses["dns"]

    def signed_file(self, path: str) -> SignedFile:
        """The genuine file served at `path` ("/files/rates-gb.bin", "/ota/update.bin") at the current size."""
        if self._files is None:
            raise RuntimeError("cloud not started: files are made by start()")
        files = self._files.files(self.state.download_bytes)
        if path not in files:
            raise KeyError(f"no file at {path!r}; files: {', '.join(files)}")
        return files[path]

    def __repr__(self) -> str:
        where = ", ".join(f"{k}={a[0]}:{a[1]}" for k, a in self.addresses.items()) or "not started"
        return f"<Cloud {where}>"
