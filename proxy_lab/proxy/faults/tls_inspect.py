"""tls_inspect: SSL inspection by a real engine (embedded mitmproxy) that re-signs TLS with the corporate CA."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from dataclasses import dataclass, field

from proxy_lab.pki import PKI
from proxy_lab.proxy.faults.base import Ctx, Fault, LabServices, OpenNext, Refuse, doc
from proxy_lab.proxy.inspection import InspectionError, InspectionStage, warm_up
from proxy_lab.proxy.responses import lab_error

log = logging.getLogger("proxy_lab.proxy")


@dataclass(kw_only=True)
class TlsInspect(Fault, name="tls_inspect"):
    """Sends each tunnel through mitmproxy, which re-signs TLS with the corporate CA unless the host is bypassed."""

    bypass: list[str] = field(
        default_factory=list, metadata=doc("host patterns (fnmatch, e.g. *.pb.com) spliced, not inspected")
    )
    send_root: bool = field(
        default=False, metadata=doc("also send the corporate root in the chain (client error: self-signed certificate in chain)")
    )
    _pki: PKI | None = field(default=None, init=False, repr=False, compare=False)
    _stage: InspectionStage | None = field(default=None, init=False, repr=False, compare=False)
    tunnels: int = field(default=0, init=False, compare=False)  # tunnels handed to the engine
    _stopped: bool = field(default=False, init=False, repr=False, compare=False)
    _locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = field(
        default_factory=weakref.WeakKeyDictionary, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for pattern in self.bypass:
            if not pattern.strip() or any(c.isspace() for c in pattern):
                raise ValueError(f"bypass: {pattern!r} is not a host pattern")

    def attach(self, lab: LabServices) -> None:
        """Use the lab's PKI; a fault never attached uses `PKI.load()` (certs/)."""
        self.bind_pki(lab.pki)

    def bind_pki(self, pki: PKI) -> None:
        self._pki = pki
        warm_up()  # a scenario is about to run: import mitmproxy now, not on the first tunnel

    @property
    def stage(self) -> InspectionStage | None:
        return self._stage

    async def start(self) -> None:
        """Start (or join) the inspection engine now (for a proxy start hook); else the first tunnel does."""
        self._stopped = False
        await self._started()

    async def _started(self) -> InspectionStage | None:
        """The stage (started on first use); None once the fault was stopped: nothing would release it."""
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self._stopped:
                return None
            if self._stage is None:
                stage = InspectionStage(self._pki or PKI.load(), bypass=self.bypass, send_root=self.send_root)
                await stage.start()
                self._stage = stage
            return self._stage

    async def stop(self) -> None:
        """Leave the inspection engine (the last user stops it and its thread).

        A tunnel still opening when the fault stops (it was removed from a served lab while the
        tunnel connected) is spliced: joining the engine then would hold it for good.
        """
        self._stopped = True
        stage, self._stage = self._stage, None
        self._locks.clear()
        if stage is not None:
            await stage.stop()

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        # The proxy resolves and connects as always (its refusals are unchanged); mitmproxy's own
        # upstream connection is handed that socket by the stage's relay.
        upstream = await next(host, port)
        try:
            stage = await self._started()
            if stage is None:
                ctx.notes["tls_inspect"] = "spliced (the fault was stopped while the tunnel opened)"
                return upstream
            sock = await stage.open_tunnel(host, port, upstream=upstream, reopen=next)
            self.tunnels += 1
        except InspectionError as exc:
            upstream.close()
            why = f"tls_inspect: {exc}"
            log.warning("%s", why)
            raise Refuse(lab_error(502, f"the inspection engine failed for {ctx.authority}", why=why)) from exc
        spliced = stage.bypasses(host, port)
        ctx.notes["tls_inspect"] = "spliced (bypass list)" if spliced else "through mitmproxy: TLS re-signed by the corporate CA"
        return sock
