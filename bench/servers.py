"""The loopback target servers (echo, sink, source), run in their own process so the client is not the bottleneck.

`python -m bench.servers` binds three ephemeral ports on 127.0.0.1, prints them as one JSON line
(`{"echo": P, "sink": P, "source": P}`), and serves until its stdin reaches EOF (the parent
exited or closed the pipe). `TargetServers` is the parent's side. The protocol is in `bench.wire`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs, wire

SOURCE_CHUNK = 256 * 1024


class EchoProtocol(asyncio.Protocol):
    """Sends every byte back."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _HeaderProtocol(asyncio.BufferedProtocol):
    """Reads one header line, then hands it and every later byte to `on_header` and `on_payload`.

    A BufferedProtocol: the loop reads straight into one preallocated buffer per connection, so
    the payload path allocates nothing (the sink must not be what caps the fastest peers).
    """

    buffer_size = 64 * 1024

    def __init__(self) -> None:
        self.head = b""
        self.in_payload = False
        self.view = memoryview(bytearray(self.buffer_size))

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        data = self.view[:nbytes]
        if self.in_payload:
            self.on_payload(data)
            return
        self.head += data
        line, sep, rest = self.head.partition(b"\n")
        if not sep:
            if len(self.head) > wire.MAX_HEADER:
                self.fail(b"ERR header too long\n")
            return
        self.in_payload = True
        self.head = b""
        try:
            self.on_header(line.decode("ascii").split())
        except (ValueError, IndexError, UnicodeDecodeError):
            self.fail(b"ERR bad header " + line[: wire.MAX_HEADER] + b"\n")
            return
        if rest:
            self.on_payload(memoryview(rest))

    def fail(self, message: bytes) -> None:
        self.in_payload = False
        self.transport.write(message)
        self.transport.close()

    def on_header(self, words: list[str]) -> None:
        raise NotImplementedError

    def on_payload(self, data: memoryview) -> None:
        raise NotImplementedError


class SinkProtocol(_HeaderProtocol):
    """Consumes `SINK n mode` payloads with an integrity verdict, or `RATE` payloads with a rate."""

    buffer_size = 1 << 20

    def on_header(self, words: list[str]) -> None:
        self.received = 0
        self.answered = False
        if words[0] == "SINK":
            self.expected = int(words[1])
            self.mode = words[2]
            if self.mode not in wire.INTEGRITY_MODES:
                raise ValueError(self.mode)
            self.bad_offset: int | None = None
            self.digest = hashlib.sha256() if self.mode == "sha256" else None
            self.on_payload = self._sink  # type: ignore[method-assign]
        elif words[0] == "RATE":
            self.warmup_s = int(words[1]) / 1000
            self.window_s = int(words[2]) / 1000
            self.first_at: float | None = None
            self.start_mark: tuple[float, int] | None = None
            self.end_mark: tuple[float, int] | None = None
            self.on_payload = self._rate  # type: ignore[method-assign]
        else:
            raise ValueError(words[0])

    def _sink(self, data: memoryview) -> None:
        if self.answered:
            return
        if self.digest is not None:
            self.digest.update(data)
        elif self.bad_offset is None:
            bad = wire.first_mismatch(self.received, data)
            if bad is not None:
                self.bad_offset = self.received + bad
        self.received += len(data)
        if self.received < self.expected:
            return
        self.answered = True
        if self.received > self.expected:
            self.transport.write(f"BAD {self.received} {self.expected}\n".encode())
        elif self.digest is not None:
            self.transport.write(f"OK {self.received} {self.digest.hexdigest()}\n".encode())
        elif self.bad_offset is not None:
            self.transport.write(f"BAD {self.received} {self.bad_offset}\n".encode())
        else:
            self.transport.write(f"OK {self.received} compare\n".encode())

    def _rate(self, data: memoryview) -> None:
        if self.answered:
            return
        now = time.monotonic()
        self.received += len(data)
        if self.first_at is None:
            self.first_at = now
            asyncio.get_running_loop().call_later(self.warmup_s + self.window_s, self._rate_answer)
            return
        if now >= self.first_at + self.warmup_s:
            # slope between two arrivals inside the window: bytes that arrived after the first mark
            if self.start_mark is None:
                self.start_mark = (now, self.received)
            else:
                self.end_mark = (now, self.received)

    def _rate_answer(self) -> None:
        if self.answered or self.transport.is_closing():
            return
        self.answered = True
        if self.start_mark is None or self.end_mark is None:
            self.transport.write(b"RATE 0 0\n")
        else:
            seconds = self.end_mark[0] - self.start_mark[0]
            self.transport.write(f"RATE {self.end_mark[1] - self.start_mark[1]} {seconds:.6f}\n".encode())
        # no close here: unread bytes would turn our FIN into a RST racing the answer; the client closes


class SourceProtocol(_HeaderProtocol):
    """On `SOURCE n`, streams n bytes of the pattern stream (with back-pressure), then closes."""

    buffer_size = 4096  # only the header is read

    def on_header(self, words: list[str]) -> None:
        if words[0] != "SOURCE":
            raise ValueError(words[0])
        self.remaining = int(words[1])
        self.sent = 0
        self.paused = False
        self._produce()

    def on_payload(self, data: memoryview) -> None:
        pass  # nothing is expected after the header

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._produce()

    def connection_lost(self, exc: Exception | None) -> None:
        self.remaining = 0

    def _produce(self) -> None:
        while self.remaining > 0 and not self.paused and not self.transport.is_closing():
            size = min(self.remaining, SOURCE_CHUNK)
            start = self.sent % wire.PATTERN_SIZE
            self.transport.write(wire.DOUBLE_PATTERN[start : start + size])
            self.sent += size
            self.remaining -= size
        if self.remaining == 0 and not self.transport.is_closing():
            self.transport.close()  # after the buffer is flushed


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    servers = {
        name: await loop.create_server(factory, procs.LOOPBACK, 0, backlog=4096)
        for name, factory in (("echo", EchoProtocol), ("sink", SinkProtocol), ("source", SourceProtocol))
    }
    ports = {name: server.sockets[0].getsockname()[1] for name, server in servers.items()}
    print(json.dumps(ports), flush=True)

    def watch_stdin() -> None:
        # the parent holds our stdin; EOF means it is gone or done with us
        while sys.stdin.buffer.read(4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    await stop.wait()
    for server in servers.values():
        server.close()


def main() -> int:
    procs.raise_nofile_limit()
    with asyncio.Runner(loop_factory=procs.loop_factory()) as runner:
        runner.run(_serve())
    return 0


@dataclass(frozen=True)
class TargetPorts:
    echo: int
    sink: int
    source: int

    def as_dict(self) -> dict[str, int]:
        return {"echo": self.echo, "sink": self.sink, "source": self.source}


class TargetServers:
    """Starts `python -m bench.servers` in its own process group; `ports` once started."""

    def __init__(self, workdir: Path) -> None:
        self.log = workdir / "servers.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: TargetPorts | None = None

    def __enter__(self) -> TargetPorts:
        repo = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.servers"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, cwd=repo, env=env, start_new_session=True,
            )  # fmt: skip
        try:
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], 20.0)
            line = self.proc.stdout.readline() if ready else b""
            if not line:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"bench target servers did not start: {tail or 'no output within 20 s'}")
            self.ports = TargetPorts(**json.loads(line))
        except BaseException:
            self.close()
            raise
        return self.ports

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            procs.stop_group(self.proc, grace_s=2.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


if __name__ == "__main__":
    sys.exit(main())
