"""The device's byte streams: a counted TCP connection (`Wire`) and the `Stream` interface.

Owns the only place the device reads and writes TCP sockets: every read has the device's read
timeout, every byte is counted into the Evidence, and resets and timeouts end the probe with a
`StreamCut` observation naming the peer and what the device was doing. EOF is returned as `b""`
(it is normal for a read-to-close body); callers that cannot accept it call `cut_eof()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from typing import Protocol

from proxy_lab.device.classify import ConnectFailed, ProbeFailed, StreamCut, classify
from proxy_lab.device.transcript import Transcript
from proxy_lab.outcomes import Evidence
from proxy_lab.resolver import Address

READ_SIZE = 65536


class Stream(Protocol):
    """What the exchanges talk to: a plain tunnel (`Wire`) or TLS over it (`TlsStream`)."""

    peer: str
    during: str
    expected: str

    @property
    def received(self) -> int: ...

    async def read(self, n: int = READ_SIZE) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    def cut_eof(self, *, before_answer: bool = False) -> ProbeFailed: ...

    def close(self) -> None: ...


def errno_name(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return errno.errorcode[exc.errno]
    return type(exc).__name__


def show_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Wire:
    """One TCP connection of the device, with timeouts, byte counts and cut classification."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        peer: str,
        evidence: Evidence,
        transcript: Transcript,
        read_timeout_s: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.evidence = evidence
        self.transcript = transcript
        self.read_timeout_s = read_timeout_s
        self.during = "on the connection"  # an adverbial phrase: "during GET /", "while waiting for ..."
        self.expected = ""
        self._received = 0
        self.sent = 0

    @property
    def received(self) -> int:
        return self._received

    @classmethod
    async def open(
        cls,
        address: Address,
        *,
        peer: str,
        evidence: Evidence,
        transcript: Transcript,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> Wire:
        """Open a TCP connection; failures end the probe (ECONNREFUSED: unreachable; slow: timeout)."""
        host, port = address
        try:
            async with asyncio.timeout(connect_timeout_s):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except TimeoutError as exc:
            transcript.note(f"TCP connect to {peer} timed out after {connect_timeout_s:g} s")
            raise ProbeFailed(
                classify(ConnectFailed(peer, "timed out", timed_out=True, timeout_s=connect_timeout_s))
            ) from exc
        except OSError as exc:
            name = errno_name(exc)
            transcript.note(f"TCP connect to {peer} failed: {name} ({exc.strerror or exc})")
            raise ProbeFailed(classify(ConnectFailed(peer, name))) from exc
        transcript.note(f"TCP connected to {peer}")
        return cls(
            reader, writer, peer=peer, evidence=evidence, transcript=transcript, read_timeout_s=read_timeout_s
        )

    def _cut(self, how: str, exc: BaseException | None = None) -> ProbeFailed:
        if how == "timeout":
            self.transcript.note(
                f"timeout: nothing from {self.peer} for {self.read_timeout_s:g} s {self.during}"
            )
            obs = StreamCut(
                self.peer,
                self.during,
                "timeout",
                after_bytes=self._received,
                timeout_s=self.read_timeout_s,
                expected=self.expected,
            )
        else:
            what = errno_name(exc) if isinstance(exc, OSError) else "ECONNRESET"
            self.transcript.note(f"reset ({what}) after {self._received} bytes {self.during}")
            obs = StreamCut(
                self.peer, self.during, "reset", after_bytes=self._received, expected=self.expected
            )
        self.close()
        return ProbeFailed(classify(obs))

    def cut_eof(self, *, before_answer: bool = False) -> ProbeFailed:
        """The ProbeFailed for an EOF the caller cannot accept (raise it)."""
        self.transcript.note(f"EOF from {self.peer} after {self._received} bytes {self.during}")
        self.close()
        return ProbeFailed(
            classify(
                StreamCut(
                    self.peer,
                    self.during,
                    "eof",
                    after_bytes=self._received,
                    before_answer=before_answer,
                    expected=self.expected,
                )
            )
        )

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` bytes; `b""` at EOF. A reset or a silence of `read_timeout_s` ends the probe."""
        try:
            async with asyncio.timeout(self.read_timeout_s):
                data = await self.reader.read(n)
        except TimeoutError as exc:
            raise self._cut("timeout") from exc
        except OSError as exc:  # ECONNRESET, ECONNABORTED, EPIPE: the connection was cut
            raise self._cut("reset", exc) from exc
        self._received += len(data)
        self.evidence.bytes_received += len(data)
        return data

    async def write(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            async with asyncio.timeout(self.read_timeout_s):
                await self.writer.drain()
        except TimeoutError as exc:
            raise self._cut("timeout") from exc
        except OSError as exc:
            raise self._cut("reset", exc) from exc
        self.sent += len(data)
        self.evidence.bytes_sent += len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    def abort(self) -> None:
        """Close without a FIN handshake (used when the connection is in an unknown state)."""
        transport = self.writer.transport
        with contextlib.suppress(Exception):
            transport.abort()
