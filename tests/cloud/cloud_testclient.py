"""A small blocking HTTP/1.1 client over real sockets (TLS with SNI or plain) for the Cloud's tests,
and `LoopThread`, which runs a cloud on an event loop of its own.

It connects to the address the cloud's resolver gives (never the system resolver), sends the
exact bytes asked for, and reads the answer until the server closes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy_lab.http1 import Head, parse_head
from proxy_lab.resolver import Address

TIMEOUT_S = 5.0
T = TypeVar("T")


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` waits for a coroutine with a timeout."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cloud-test-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass(frozen=True)
class Reply:
    status: int
    head: Head
    body: bytes
    rest: bytes  # bytes after this answer (a second pipelined answer)

    def header(self, name: str) -> str | None:
        return self.head.get(name)


def connect(addr: Address, *, tls: ssl.SSLContext | None = None, sni: str | None = None) -> socket.socket:
    sock = socket.create_connection(addr, timeout=TIMEOUT_S)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=sni)
    except BaseException:
        sock.close()
        raise


def read_all(sock: socket.socket, limit: int = 64 * 1024 * 1024) -> bytes:
    """Read until EOF (bounded in bytes; each recv bounded by the socket timeout)."""
    out = bytearray()
    while len(out) < limit:
        try:
            data = sock.recv(65536)
        except ssl.SSLZeroReturnError:
            break
        if not data:
            break
        out += data
    return bytes(out)


def parse_reply(raw: bytes) -> Reply:
    head = parse_head(raw, request=False)
    if head is None:
        raise AssertionError(f"no complete response head in {raw[:200]!r}")
    status = int(head.start_line.split(" ", 2)[1])
    rest = raw[head.size :]
    length = head.get("content-length")
    if length is None:
        return Reply(status, head, rest, b"")
    n = int(length)
    return Reply(status, head, rest[:n], rest[n:])


def request_bytes(
    method: str,
    target: str,
    host: str,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    close: bool = True,
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(
    addr: Address,
    raw: bytes,
    *,
    tls: ssl.SSLContext | None = None,
    sni: str | None = None,
) -> bytes:
    """Send `raw`, return every byte received until the server closes."""
    with connect(addr, tls=tls, sni=sni) as sock:
        sock.sendall(raw)
        return read_all(sock)


def http(
    addr: Address,
    method: str,
    target: str,
    host: str,
    body: bytes = b"",
    *,
    tls: ssl.SSLContext | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> Reply:
    """One request with `Connection: close`; TLS when `tls` is given (SNI = `host`)."""
    raw = exchange(
        addr, request_bytes(method, target, host, body, headers), tls=tls, sni=host if tls else None
    )
    return parse_reply(raw)


XML_HEADERS = (("Content-Type", "application/xml"),)
