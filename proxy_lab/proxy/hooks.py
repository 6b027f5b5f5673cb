"""The faults' hooks for one proxy: which faults a request concerns, and the chains their hooks make.

`Hooks(faults)` finds once which faults override each hook (`proxy_lab.proxy.faults` documents
the hooks and their order); with none, asking costs one dict lookup. For one request (a `Ctx`)
it gives the faults in scope, the authentication and policy decisions (`on_auth`, `on_connect`),
the resolve/open_upstream middleware wrapped around the proxy's own resolving and connecting
(`open_chain`), the answer that announces a tunnel (`answer_for`) and the tunnel's stages.
Hooks of several faults chain in the order the faults are configured. A `TunnelWatcher` (the
recorder, `ProxyConfig.watcher`) adds the first stage of every tunnel, which only watches.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Awaitable, Callable
from typing import Literal, get_args

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import AnswerFn, Ctx, Fault, OpenNext, ResolveNext, Stage
from proxy_lab.proxy.responses import ESTABLISHED
from proxy_lab.proxy.watch import TunnelWatcher
from proxy_lab.resolver import Address

Hook = Literal["on_auth", "on_connect", "resolve", "open_upstream", "established_response", "stream"]
HOOKS: tuple[Hook, ...] = get_args(Hook)


class Hooks:
    """The configured faults, sorted by the hooks they override (see the module docstring)."""

    def __init__(self, faults: list[Fault], watcher: TunnelWatcher | None = None) -> None:
        self.watcher = watcher
        self.client = [f for f in faults if f.overrides("handle_client")]  # before any head is parsed
        self._hooked: dict[Hook, list[Fault]] = {hook: [f for f in faults if f.overrides(hook)] for hook in HOOKS}
        self._request = [hook for hook in HOOKS if self._hooked[hook]]

    def in_scope(self, host: str, port: int, hook: Hook) -> list[Fault]:
        """The faults in scope for (host, port) that override `hook`, in configured order."""
        hooked = self._hooked[hook]
        if not hooked:
            return hooked
        return [f for f in hooked if f.applies(host, port)]

    def any_in_scope(self, host: str, port: int) -> bool:
        """Whether any fault's request hook concerns (host, port)."""
        return any(self.in_scope(host, port, hook) for hook in self._request)

    def of(self, ctx: Ctx, hook: Hook) -> list[Fault]:
        return self.in_scope(ctx.host, ctx.port, hook)

    # -- decisions ----------------------------------------------------------------------------------
    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        """The proxy's own authentication answer (None: let through), as the faults rewrite it."""
        for fault in self.of(ctx, "on_auth"):
            answer = fault.on_auth(ctx, answer)
        return answer

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        """The first refusal a fault in scope gives by policy, or None."""
        for fault in self.of(ctx, "on_connect"):
            refusal = await fault.on_connect(ctx)
            if refusal is not None:
                return refusal
        return None

    # -- the upstream ---------------------------------------------------------------------------------
    def wrap_upstream(self, ctx: Ctx) -> bool:
        """Whether a resolve or open_upstream fault is in scope (the upstream comes from `open_chain`)."""
        return bool(self.of(ctx, "resolve") or self.of(ctx, "open_upstream"))

    def open_chain(self, ctx: Ctx, resolve: ResolveNext, base: Callable[[ResolveNext], OpenNext]) -> OpenNext:
        """The resolve faults wrapped around `resolve`, `base` (connect to what that resolves to)
        at the end, and the open_upstream faults wrapped around it all."""
        for fault in reversed(self.of(ctx, "resolve")):
            resolve = _wrap_resolve(fault, ctx, resolve)
        opener = base(resolve)
        for fault in reversed(self.of(ctx, "open_upstream")):
            opener = _wrap_open(fault, ctx, opener)
        return opener

    # -- the tunnel ---------------------------------------------------------------------------------
    def answer_for(self, ctx: Ctx) -> AnswerFn:
        """How an HTTP client is answered: the refusal's bytes, or the `established_response` chain."""
        if not self._hooked["established_response"]:
            return _plain_answer
        return functools.partial(self._answer, ctx)

    def _answer(self, ctx: Ctx, refusal: Refusal | None) -> bytes:
        if refusal is not None:
            return refusal.to_bytes()
        head = ESTABLISHED  # rewritten when the tunnel is announced, after every other hook ran
        for fault in self.of(ctx, "established_response"):
            head = fault.established_response(ctx, head)
        return head

    def relays_unchanged(self, ctx: Ctx) -> bool:
        """Whether nothing on the lab side watches or rewrites the tunnel of `ctx` once it is open
        (no watcher, no stream or established_response fault in scope): a plain relay may carry it."""
        return self.watcher is None and not self.of(ctx, "stream") and not self.of(ctx, "established_response")

    def stages(self, ctx: Ctx) -> list[Stage]:
        """The watcher's stage first (it sees the bytes as they came from either side), then a fresh
        stage from each fault in scope that makes one, in configured order."""
        stages: list[Stage] = []
        watching = self.watcher.stage(ctx) if self.watcher is not None else None
        if watching is not None:
            stages.append(watching)
        for fault in self.of(ctx, "stream"):
            stage = fault.stream(ctx)
            if stage is not None:
                stages.append(stage)
        return stages


def _plain_answer(refusal: Refusal | None) -> bytes:
    return refusal.to_bytes() if refusal is not None else ESTABLISHED


def _wrap_resolve(fault: Fault, ctx: Ctx, nxt: ResolveNext) -> ResolveNext:
    def call(host: str, port: int) -> Awaitable[list[Address]]:
        return fault.resolve(ctx, host, port, nxt)

    return call


def _wrap_open(fault: Fault, ctx: Ctx, nxt: OpenNext) -> OpenNext:
    def call(host: str, port: int) -> Awaitable[socket.socket]:
        return fault.open_upstream(ctx, host, port, nxt)

    return call
