"""The recorder: one JSON line per tunnel (or refused request) a real client opened through the lab proxy.

Implements the server's `TunnelWatcher` (proxy_lab/proxy/watch.py). Passive only: its Stage hands
every chunk on unchanged and keeps no byte of it; it reads the first bytes each way with the
sans-IO sniffers of `tlssniff` (SNI; TLS version; up to TLS 1.2 the certificate issuer).

A line (`docs/observe.md` lists every field): time, client (or its pseudonym), target, the catalog
match (service and endpoint ids, or `not in the guide`), the lab's answer and the upstream's
(status, reason, header fields; never a credential), who refused, SNI, TLS version, issuer, bytes
each way, duration and how it ended.

Size limit: a line that would take the file past `max_bytes` first moves it to `PATH.1` (replacing
the previous one), so a recording never holds more than twice `max_bytes` on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.chain import NOTE, UpstreamAnswer, UpstreamProxy
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Direction, Stage, TunnelControl
from proxy_lab.record.index import NOT_IN_GUIDE, CatalogIndex
from proxy_lab.record.tlssniff import ClientHelloSniffer, ServerHelloSniffer

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MIN_MAX_BYTES = 4096
# Never recorded, whoever sent them: they carry credentials or session secrets.
_SECRET_HEADERS = frozenset({"proxy-authorization", "authorization", "cookie", "set-cookie"})
_MAX_HEADERS = 32  # header fields of one answer kept in the record


class WatchStage(Stage):
    """Watches the first bytes each way for the TLS facts; every chunk passes on unchanged. Once a
    direction's sniffer is done the stage is `finished` with it, and the relay carries the rest of
    that direction on its fast path (a bulk transfer pays for the watching only at its start)."""

    def __init__(self) -> None:
        self.client = ClientHelloSniffer()
        self.server = ServerHelloSniffer()

    async def client_to_upstream(self, data: bytes) -> bytes:
        if not self.client.done:
            self.client.feed(data)
        return data

    async def upstream_to_client(self, data: bytes) -> bytes:
        if not self.server.done:
            self.server.feed(data)
        return data

    def finished(self, direction: Direction) -> bool:
        return (self.client if direction == "client_to_upstream" else self.server).done


@dataclass
class Recorder:
    """Appends one JSON line per tunnel to `path`; see the module docstring. Close it when done."""

    path: Path
    max_bytes: int = DEFAULT_MAX_BYTES
    anonymise: bool = False
    upstream: UpstreamProxy | None = None
    index: CatalogIndex = field(default_factory=CatalogIndex)
    key: bytes = field(default_factory=lambda: os.urandom(32), repr=False)  # pseudonyms: this run only
    _file: IO[bytes] | None = field(default=None, repr=False)
    _size: int = 0
    lines: int = 0
    rotations: int = 0

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not isinstance(self.max_bytes, int) or self.max_bytes < MIN_MAX_BYTES:
            raise ConfigError(f"record max bytes {self.max_bytes!r}: expected at least {MIN_MAX_BYTES}")
        try:
            self._open()
        except OSError as exc:
            raise ConfigError(f"record file {self.path}: {exc.strerror or exc}") from exc

    def _open(self) -> None:
        self._file = open(self.path, "ab")  # held for the recorder's life
        self._size = self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- TunnelWatcher ------------------------------------------------------------------------------
    def stage(self, ctx: Ctx) -> Stage | None:
        stage = WatchStage()
        ctx.notes["record"] = stage
        return stage

    def refused(self, ctx: Ctx, refusal: Refusal) -> None:
        upstream = ctx.notes.get(NOTE)
        by = "upstream" if isinstance(upstream, UpstreamAnswer) and not upstream.ok and "upstream proxy" in refusal.why else "lab"
        lab: dict[str, Any] = {"action": refusal.action, "why": refusal.why, "passed_on": by == "upstream"}
        if refusal.action == "respond":
            lab = {"status": refusal.status, "reason": refusal.reason, **lab}
            if by == "lab":
                lab["headers"] = _headers(refusal.headers)
        self.write(self._line(ctx, lab=lab, refused_by=by, end="refused"))

    def closed(self, ctx: Ctx, tunnel: TunnelControl, why: str) -> None:
        stage = ctx.notes.get("record")
        if not isinstance(stage, WatchStage):
            return
        line = self._line(
            ctx, lab={"status": 200, "reason": "Connection established"}, refused_by=None,
            end=_end(why, tunnel.first_end),
        )  # fmt: skip
        line.update(
            sni=stage.client.sni or None,
            tls_version=stage.server.seen.version or None,
            issuer=stage.server.seen.issuer or None,
            bytes_up=tunnel.bytes_client_to_upstream,
            bytes_down=tunnel.bytes_upstream_to_client,
        )
        if why:
            line["why"] = why
        # What the lab's own faults did to this tunnel (tls_inspect, idle_timeout, tamper, ...), so
        # `observe` can tell the lab's doing from the upstream's.
        notes = {k: str(v)[:200] for k, v in ctx.notes.items() if k not in ("record", NOTE)}
        if notes:
            line["lab_faults"] = notes
        self.write(line)

    # -- the line -------------------------------------------------------------------------------------
    def _line(self, ctx: Ctx, *, lab: dict[str, Any], refused_by: str | None, end: str) -> dict[str, Any]:
        endpoints = self.index.match(ctx.host, ctx.port)
        upstream = ctx.notes.get(NOTE)
        up: dict[str, Any] | None = None
        if self.upstream is not None:
            up = {"proxy": self.upstream.authority, "credentials": self.upstream.user is not None}
            if isinstance(upstream, UpstreamAnswer):
                up.update(status=upstream.status, reason=upstream.reason, headers=_headers(upstream.headers))
        started, now = ctx.started, time.time()  # from the request's arrival: a refusal takes time too
        return {
            "time": datetime.fromtimestamp(started, UTC).isoformat(timespec="milliseconds"),
            "client": self._client(ctx.client),
            "target": ctx.authority,
            "service": endpoints[0].service if endpoints else None,
            "endpoints": [e.id for e in endpoints],
            "catalog": endpoints[0].service if endpoints else NOT_IN_GUIDE,
            "lab": lab,
            "upstream": up,
            "refused_by": refused_by,
            "sni": None,
            "tls_version": None,
            "issuer": None,
            "bytes_up": 0,
            "bytes_down": 0,
            "duration_s": round(max(0.0, now - started), 3),
            "end": end,
        }

    def _client(self, address: tuple[str, int]) -> str:
        if not self.anonymise:
            host, port = address
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        digest = hmac.new(self.key, address[0].encode(), hashlib.sha256).hexdigest()
        return f"client-{digest[:12]}"

    def write(self, line: dict[str, Any]) -> None:
        """Append one line, rotating first when it would take the file past max_bytes."""
        data = (json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        if self._file is None:
            return
        if self._size + len(data) > self.max_bytes and self._size > 0:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._open()
            self.rotations += 1
        if len(data) > self.max_bytes:  # one line larger than the limit: shortened, never dropped silently
            line = {k: v for k, v in line.items() if k not in ("upstream", "lab")} | {"truncated": True}
            data = (json.dumps(line, separators=(",", ":")) + "\n").encode()[: self.max_bytes]
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        self.lines += 1


def _headers(headers: tuple[tuple[str, str], ...]) -> list[list[str]]:
    return [[k, v] for k, v in headers[:_MAX_HEADERS] if k.lower() not in _SECRET_HEADERS]


def _end(why: str, first_eof: Direction | None) -> str:
    """How a tunnel ended, in the record's words."""
    low = why.lower()
    if "idle" in low:
        return "idle timeout"
    if "reset" in low:
        if low.startswith("client"):
            return "client reset"
        if low.startswith("upstream"):
            return "server reset"
        return "reset"
    if "stopping" in low:
        return "proxy stopped"
    if first_eof == "client_to_upstream":
        return "client closed"
    if first_eof == "upstream_to_client":
        return "server closed"
    return "closed"
