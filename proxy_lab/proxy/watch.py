"""The seam through which the server lets a passive observer (the recorder) see every request.

`TunnelWatcher` is all the server knows of it: a `Stage` per tunnel that only watches (it returns
every chunk unchanged), the refusals, and each tunnel's end. Implemented by
`proxy_lab.record.Recorder`; set as `ProxyConfig.watcher`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: the server imports this module, and the fault framework imports the server's package
    from proxy_lab.proxy.events import Refusal
    from proxy_lab.proxy.faults.base import Ctx, Stage, TunnelControl


class TunnelWatcher(Protocol):
    def stage(self, ctx: Ctx) -> Stage | None:
        """A fresh watching Stage for a tunnel about to open, or None; it must not alter any byte."""

    def refused(self, ctx: Ctx, refusal: Refusal) -> None:
        """The request in `ctx` was answered with `refusal` (by the lab, or passed on from an upstream)."""

    def closed(self, ctx: Ctx, tunnel: TunnelControl, why: str) -> None:
        """The tunnel of `ctx` ended; `why` is the relay's reason (empty: both sides closed normally)."""
