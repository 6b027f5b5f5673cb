"""The switchboard: one Fault the served lab's proxy is built with, standing for the faults in force.

`LabProxy` learns its faults once, when it is made (proxy_lab/proxy/server.py finds which hooks are
overridden then). The served lab changes faults while the proxy runs, so the proxy is built with a
`Switchboard` that overrides every hook and, at each call, delegates to the faults in force now, in
the order they were added, in scope as the server would check them (`Fault.applies`). A new tunnel
sees a change at once; a tunnel already open keeps the stages it was built with, unless the change
asks to cut the open ones (`cut=True`: every tracked tunnel is reset).

Because it overrides every hook (`handle_client` too, for socks_only), every connection of the served
proxy takes the general path, never the plain fast path (proxy_lab/proxy/fastpath.py): the served
lab is for demos and test suites, not for throughput.

Faults are built and validated by `make_fault`, so a setting is refused with the faults' own
message; `FaultRejected` carries the setting it names. A fault with an engine (tls_inspect) is
attached to the lab and started when it comes into force, and stopped once the tunnels that were
open when it left have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults import (
    FAULTS,
    ClientConn,
    Ctx,
    Fault,
    LabServices,
    OpenNext,
    ResolveNext,
    Stage,
    TunnelControl,
    load_all,
    make_fault,
)
from proxy_lab.resolver import Address
from proxy_lab.serve.stack import StageStack
from proxy_lab.tasks import create_task

RETIRE_WAIT_S = 120.0  # longest wait for a removed fault's tunnels to end before its engine stops


class UnknownFault(LookupError):
    """A fault name (or id) that does not exist; the message lists what does."""


class FaultRejected(ValueError):
    """Settings the fault's own validation refused: `field` is the setting named (or None), `reason` why."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class FaultEntry:
    """One fault in force: its id in the API, its name and settings as given, the built fault."""

    id: str
    name: str
    settings: dict[str, Any]
    fault: Fault
    since: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "settings": dict(self.settings), "since": self.since}


def build_fault(name: str, settings: dict[str, Any]) -> Fault:
    """`make_fault(name, settings)`; UnknownFault for a name not in the catalog of faults,
    FaultRejected (with the setting named) for settings the fault refuses."""
    load_all()
    if name not in FAULTS:
        raise UnknownFault(f"unknown fault {name!r}: expected one of {', '.join(sorted(FAULTS))}")
    try:
        return make_fault(name, settings)
    except ConfigError as exc:
        raise FaultRejected(str(exc), _setting_named(str(exc), FAULTS[name])) from exc


# make_fault's messages: "fault X: unknown setting 'k'; ...", "fault X: setting k = v: expected T",
# and "fault X: <__post_init__'s ValueError>", which by convention starts with "k: ...".
_NAMED = (re.compile(r"unknown setting '([^']+)'"), re.compile(r"setting (\w+) = "), re.compile(r"^fault \w+: (\w+):"))


def _setting_named(message: str, cls: type[Fault]) -> str | None:
    declared = set(cls.__dataclass_fields__)
    for pattern in _NAMED:
        m = pattern.search(message)
        if m and (m.re is _NAMED[0] or m.group(1) in declared):
            return m.group(1)
    return None


class Switchboard(Fault):
    """Delegates every hook to the faults in force now (see the module docstring)."""

    name = "switchboard"  # not registered: it is never named in a scenario or in the API

    def __init__(self, lab: LabServices | None = None) -> None:
        super().__init__()
        self._lab = lab
        self._entries: list[FaultEntry] = []
        self._ids = itertools.count(1)
        self._tunnels: set[TunnelControl] = set()
        self._ended = asyncio.Event()
        self._started = False
        self._retiring: dict[asyncio.Task[None], Fault] = {}  # task -> the fault it will stop

    # -- what is in force ---------------------------------------------------------------------
    @property
    def entries(self) -> list[FaultEntry]:
        return list(self._entries)

    def entry(self, fault_id: str) -> FaultEntry:
        for e in self._entries:
            if e.id == fault_id:
                return e
        known = ", ".join(e.id for e in self._entries) or "none"
        raise UnknownFault(f"no fault with id {fault_id!r} in force (in force: {known})")

    @property
    def open_tunnels(self) -> int:
        return sum(1 for t in self._tunnels if not t.closed)

    async def add(self, name: str, settings: dict[str, Any] | None = None, *, cut: bool = False) -> FaultEntry:
        settings = dict(settings or {})
        entry = FaultEntry(f"f{next(self._ids)}", name, settings, build_fault(name, settings))
        await self._enter(entry.fault)
        self._entries.append(entry)
        self._cut_if(cut, f"fault {entry.id} ({name}) added")
        return entry

    async def update(self, fault_id: str, settings: dict[str, Any], *, cut: bool = False) -> FaultEntry:
        """Merge `settings` into the fault's (toxiproxy's PATCH); the rebuilt fault takes its place."""
        old = self.entry(fault_id)
        merged = {**old.settings, **settings}
        new = FaultEntry(old.id, old.name, merged, build_fault(old.name, merged))
        await self._enter(new.fault)
        self._entries[self._entries.index(old)] = new
        self._cut_if(cut, f"fault {old.id} ({old.name}) changed")
        self._retire(old.fault)
        return new

    async def remove(self, fault_id: str, *, cut: bool = False) -> FaultEntry:
        entry = self.entry(fault_id)
        self._entries.remove(entry)
        self._cut_if(cut, f"fault {entry.id} ({entry.name}) removed")
        self._retire(entry.fault)
        return entry

    async def replace(self, specs: Iterable[tuple[str, dict[str, Any]]], *, cut: bool = False) -> list[FaultEntry]:
        """Put exactly these faults in force (a preset); nothing changes when one of them is refused."""
        built = [(name, dict(s), build_fault(name, dict(s))) for name, s in specs]
        fresh = [FaultEntry(f"f{next(self._ids)}", name, s, fault) for name, s, fault in built]
        entered: list[Fault] = []
        try:
            for e in fresh:
                await self._enter(e.fault)
                entered.append(e.fault)
        except BaseException:
            for fault in entered:  # their engines are left: the faults in force stay as they were
                await fault.stop()
            raise
        old, self._entries = self._entries, fresh
        self._cut_if(cut, "faults replaced")
        for e in old:
            self._retire(e.fault)
        return list(fresh)

    def cut(self, why: str) -> int:
        """Reset every open tunnel; the number cut."""
        cut = 0
        for tunnel in list(self._tunnels):
            if not tunnel.closed:
                tunnel.reset(why)
                cut += 1
        return cut

    def _cut_if(self, cut: bool, why: str) -> None:
        if cut:
            self.cut(f"switchboard: {why}, open tunnels cut")

    async def _enter(self, fault: Fault) -> None:
        if self._lab is not None:
            fault.attach(self._lab)
        if self._started:
            await fault.start()

    def _retire(self, fault: Fault) -> None:
        """Stop a fault that left (its engine), once the tunnels open now have ended."""
        if type(fault).stop is Fault.stop:
            return
        if not self._started:
            return
        waiting = {t for t in self._tunnels if not t.closed}

        async def retire() -> None:
            deadline = time.monotonic() + RETIRE_WAIT_S
            while any(not t.closed for t in waiting) and (left := deadline - time.monotonic()) > 0:
                ended = self._ended  # set when any tracked tunnel ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), min(left, 1.0))
            await fault.stop()

        task = create_task(retire(), name=f"switchboard retire {fault.name}")
        self._retiring[task] = fault
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    # -- lifecycle (LabProxy.start / stop) ------------------------------------------------------
    async def start(self) -> None:
        self._started = True
        for e in self._entries:
            await e.fault.start()

    async def stop(self) -> None:
        """Stop every fault in force and every retired one still waiting for its tunnels."""
        self._started = False
        retiring, self._retiring = dict(self._retiring), {}
        for task in retiring:
            task.cancel()
        if retiring:
            await asyncio.wait(retiring, timeout=5)
        for fault in [*(e.fault for e in self._entries), *retiring.values()]:
            await fault.stop()
        self._tunnels.clear()

    # -- the hooks: each delegates to the faults in force now ---------------------------------------
    def _in_force(self, hook: str, host: str | None = None, port: int = 0) -> list[Fault]:
        return [
            e.fault
            for e in self._entries
            if e.fault.overrides(hook) and (host is None or e.fault.applies(host, port))
        ]

    async def handle_client(self, conn: ClientConn) -> bool:
        for fault in self._in_force("handle_client"):
            if await fault.handle_client(conn):
                return True
        return False

    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        for fault in self._in_force("on_auth", ctx.host, ctx.port):
            answer = fault.on_auth(ctx, answer)
        return answer

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        for fault in self._in_force("on_connect", ctx.host, ctx.port):
            refusal = await fault.on_connect(ctx)
            if refusal is not None:
                return refusal
        return None

    async def resolve(self, ctx: Ctx, host: str, port: int, next: ResolveNext) -> list[Address]:
        chain = next
        for fault in reversed(self._in_force("resolve", ctx.host, ctx.port)):
            chain = _resolve_link(fault, ctx, chain)
        return await chain(host, port)

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        chain = next
        for fault in reversed(self._in_force("open_upstream", ctx.host, ctx.port)):
            chain = _open_link(fault, ctx, chain)
        return await chain(host, port)

    def established_response(self, ctx: Ctx, head: bytes) -> bytes:
        for fault in self._in_force("established_response", ctx.host, ctx.port):
            head = fault.established_response(ctx, head)
        return head

    def stream(self, ctx: Ctx) -> Stage | None:
        stages = [s for f in self._in_force("stream", ctx.host, ctx.port) if (s := f.stream(ctx)) is not None]
        # Always a stack, even empty: it is how the switchboard knows the tunnel to cut it.
        return StageStack(stages, self._tunnels.add, self._tunnel_ended)

    def _tunnel_ended(self, tunnel: TunnelControl) -> None:
        self._tunnels.discard(tunnel)
        ended, self._ended = self._ended, asyncio.Event()
        ended.set()


def _resolve_link(fault: Fault, ctx: Ctx, nxt: ResolveNext) -> ResolveNext:
    async def link(host: str, port: int) -> list[Address]:
        return await fault.resolve(ctx, host, port, nxt)

    return link


def _open_link(fault: Fault, ctx: Ctx, nxt: OpenNext) -> OpenNext:
    async def link(host: str, port: int) -> socket.socket:
        return await fault.open_upstream(ctx, host, port, nxt)

    return link
