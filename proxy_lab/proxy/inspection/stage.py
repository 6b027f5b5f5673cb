"""The inspection stage: TLS interception by the process's embedded mitmproxy, with a stage's own options.

    async with InspectionStage(pki, bypass=["*.pb.com"]) as stage:
        sock = await stage.open_tunnel("pb-ota.redbend.com", 443, upstream=sock_to_target, reopen=opener)
        # speak TLS on `sock`: re-signed by the corporate CA

Several stages share one engine (engine.py), each with its bypass list and `send_root`: every
tunnel is opened with `CONNECT host:port` + `X-Proxy-Lab-Tunnel: <token>`, where the token names
the stage and the upstream socket waiting for the tunnel (tunnels.py). The owner of a stage (the
`tls_inspect` fault) connects to the target through its own pipeline first and hands that socket
over, so the proxy's refusals (dns_fail, connect failures) happen before the tunnel; `reopen`
opens another one the same way when mitmproxy reconnects.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import find_head_end, parse_head
from proxy_lab.pki import PKI
from proxy_lab.proxy.inspection.engine import Engine, acquire, release
from proxy_lab.proxy.inspection.tunnels import TUNNEL_HEADER, InspectionError, OpenFn, Pending, Profile
from proxy_lab.resolver import Address
from proxy_lab.tasks import Service

HEAD_TIMEOUT_S = 10.0  # mitmproxy's answer to a CONNECT
MAX_ANSWER_HEAD = 16384


class InspectionStage(Service):
    """TLS interception by the process's embedded mitmproxy, with this stage's bypass list and chain.

    `start()` starts the engine (or joins the running one) and `stop()` leaves it; the last stage
    to leave stops it and its thread. `open_tunnel(host, port, ...)` returns a connected socket that
    stands for `host:port` as seen through the inspecting proxy.
    """

    def __init__(self, pki: PKI, *, bypass: Sequence[str] = (), send_root: bool = False) -> None:
        self.pki = pki
        self.bypass = tuple(bypass)
        self.send_root = send_root
        self._profile = Profile.of(self.bypass, send_root)
        self._engine: Engine | None = None
        self._pid = 0

    @property
    def running(self) -> bool:
        return self._engine is not None

    @property
    def address(self) -> Address:
        """Where mitmproxy listens (it serves only tunnels opened by `open_tunnel`)."""
        if self._engine is None or self._engine.address is None:
            raise RuntimeError("InspectionStage.address read before start()")
        return self._engine.address

    def bypasses(self, host: str, port: int) -> bool:
        """Whether a tunnel to host:port is spliced (by its CONNECT name; mitmproxy also checks SNI)."""
        return self._profile.bypasses([f"{host.lower()}:{port}"])

    async def start(self) -> None:
        if self._engine is not None:
            return
        engine = await acquire(self.pki)
        self._pid = engine.tunnels.add_profile(self._profile)
        self._engine = engine

    async def stop(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        engine.tunnels.remove_profile(self._pid)
        await release(engine)


    async def open_tunnel(
        self,
        host: str,
        port: int,
        *,
        reopen: OpenFn,
        upstream: socket.socket | None = None,
        timeout_s: float = HEAD_TIMEOUT_S,
    ) -> socket.socket:
        """A socket to mitmproxy, tunnelled to host:port; the bytes written to it are inspected.

        `upstream` is an already connected socket to the real target, which mitmproxy's upstream
        connection is given; `reopen(host, port)` opens another one (when there is no `upstream`,
        and when mitmproxy reconnects). The socket is non-blocking and belongs to the caller.
        Raises InspectionError.
        """
        engine = self._engine
        if engine is None or engine.address is None:
            raise InspectionError("InspectionStage.open_tunnel called before start()")
        loop = asyncio.get_running_loop()
        token = engine.tunnels.announce(Pending(self._pid, host, port, loop, upstream, reopen))
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, engine.address), timeout_s)
            request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{TUNNEL_HEADER}: {token}\r\n\r\n"
            await loop.sock_sendall(sock, request.encode("ascii"))
            status = await asyncio.wait_for(read_answer(sock), timeout_s)
        except BaseException as exc:
            sock.close()
            engine.tunnels.forget(token)
            if isinstance(exc, OSError | TimeoutError | RemoteProtocolError):
                raise InspectionError(f"mitmproxy at {engine.address[0]}:{engine.address[1]}: {exc!r}") from exc
            raise
        if not 200 <= status[0] < 300:
            sock.close()
            engine.tunnels.forget(token)
            raise InspectionError(f"mitmproxy refused CONNECT {authority}: {status[0]} {status[1]}")
        return sock


async def read_answer(sock: socket.socket, limit: int = MAX_ANSWER_HEAD) -> tuple[int, str]:
    """Read a proxy's answer head from `sock` in one go, leaving every byte after it in the socket.

    The head is peeked at (MSG_PEEK) and then read exactly, so what follows it (the tunnel's first
    bytes: a server that speaks first may send them at once) stays for whoever uses the socket.
    While the head is incomplete the socket's low-water mark asks the kernel to wake us only once
    more than what was peeked has arrived, or the peer closed (SO_RCVLOWAT, honoured by epoll for
    TCP on Linux): a wake-up without more bytes is the peer's close.
    """
    loop = asyncio.get_running_loop()
    seen = 0
    try:
        while True:
            await _readable(loop, sock)
            peeked = sock.recv(limit + 1, socket.MSG_PEEK)
            if len(peeked) <= seen:  # woken without more bytes: the peer closed (FIN or reset)
                raise ConnectionResetError(f"the proxy closed after {seen} bytes of its answer")
            end = find_head_end(peeked)
            if end >= 0:
                sock.recv(end)  # the head alone: at least `end` bytes are waiting
                head = parse_head(peeked[:end], max_head_bytes=limit, request=False)
                break
            if len(peeked) > limit:
                raise RemoteProtocolError(f"the proxy's answer head is larger than {limit} bytes")
            seen = len(peeked)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, seen + 1)
    finally:
        if seen:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    assert head is not None  # a complete head parses or raises
    version, _, rest = head.start_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise RemoteProtocolError(f"the proxy answered {head.start_line[:60]!r}")
    return int(code), reason


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Wait until `sock` has bytes (or EOF) to read."""
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
