"""The fault framework's types: `Fault` and its hooks, the per-connection `Ctx`, per-tunnel `Stage`s.

Read the package docstring (`proxy_lab.proxy.faults`) for how the hooks fit the CONNECT pipeline.
This module holds no fault; every fault lives in its own module and registers itself by subclassing
`Fault` with a `name=` class keyword, when the package `__init__` imports that module.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.events import ConnectRequest, Refusal
from proxy_lab.resolver import Address
from proxy_lab.typed import Invalid, UnknownKeys, build, fields_of, type_name

if TYPE_CHECKING:
    from proxy_lab.pki import PKI

Direction = Literal["client_to_upstream", "upstream_to_client"]
DIRECTIONS: tuple[Direction, ...] = ("client_to_upstream", "upstream_to_client")

ResolveNext = Callable[[str, int], Awaitable[list[Address]]]
OpenNext = Callable[[str, int], Awaitable[socket.socket]]
AnswerFn = Callable[[Refusal | None], bytes]

FAULTS: dict[str, type[Fault]] = {}


class Refuse(Exception):
    """Raised by an async hook (resolve, open_upstream) to answer the client with `refusal` instead."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.why or refusal.describe())
        self.refusal = refusal


@dataclass
class Ctx:
    """One CONNECT (or SOCKS) request as the hooks see it; faults may leave evidence in `notes`."""

    client: Address  # the client's address
    proxy: Address  # the proxy's listening address
    host: str  # target host, lower-case, no brackets
    port: int
    request: ConnectRequest | None = None  # None when the request did not come as HTTP CONNECT
    user: str | None = None  # set when Basic credentials matched a configured user
    auth_why: str = ""  # the auth check's reason (never contains a password)
    conn_id: int = 0
    # (configured name, password) of a proxy user, the name compared without case (NTLM's rule);
    # None when no such user. For schemes that need the password itself (auth_schemes' NTLM).
    password_of: Callable[[str], tuple[str, str] | None] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)  # when the request arrived (wall clock, for records)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class LabServices(Protocol):
    """What the lab lends its faults (`proxy_lab.lab.Lab` satisfies it): the PKI, for now."""

    @property
    def pki(self) -> PKI: ...


class TunnelControl(Protocol):
    """What a `Stage` may do to its tunnel (implemented by `proxy_lab.proxy.relay.Tunnel`)."""

    ctx: Ctx

    @property
    def bytes_client_to_upstream(self) -> int: ...
    @property
    def bytes_upstream_to_client(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    @property
    def first_end(self) -> Direction | None:
        """The direction whose sender ended (FIN or close) first; None while both still send."""

    def send(self, direction: Direction, data: bytes) -> None:
        """Write `data` now toward the client (`upstream_to_client`) or the upstream, bypassing stages."""

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait until both sockets' write buffers are empty (or `timeout_s` passed)."""

    def close(self, why: str) -> None:
        """Close both sides after their buffered bytes are sent (FIN)."""

    def reset(self, why: str) -> None:
        """Reset both sides at once: SO_LINGER 0 then close (RST), buffered bytes are dropped."""


class ClientConn(Protocol):
    """The raw client connection as `Fault.handle_client` sees it (implemented in `proxy_lab.proxy.conn`)."""

    peer: Address
    sockname: Address

    def buffered(self) -> bytes:
        """Bytes received and not consumed yet."""

    def consume(self, n: int) -> None: ...
    async def read_more(self, timeout_s: float) -> bool:
        """Wait for more bytes; False once the client sent EOF; raises TimeoutError."""

    def write(self, data: bytes) -> None: ...
    async def close(self, linger_s: float = 1.0) -> None:
        """Send what is buffered, FIN, read and drop what the client still sends for up to `linger_s`, close."""

    def reset(self) -> None: ...
    def new_ctx(self, host: str, port: int) -> Ctx: ...
    async def tunnel(self, ctx: Ctx, answer: AnswerFn) -> None:
        """Run the rest of the pipeline for `ctx`: on_connect, resolve, open_upstream, then relay.

        `answer(None)` gives the bytes that announce success, `answer(refusal)` those of a refusal
        (for a `respond` refusal); close and reset refusals need no bytes.
        """


class Stage:
    """A per-tunnel data stage made by `Fault.stream`: transforms and timing for one tunnel.

    Override only what you need: a direction whose transform and `at_eof` are not overridden by any
    stage stays on the fast path (bytes go straight from socket to socket, no per-chunk work). A
    transform gets each chunk as read (up to 256 KiB), may await (timing), and returns the bytes to
    forward (b"" to drop them). `self.tunnel` is set before data flows. `run` is started as a task
    alongside the tunnel when overridden, and cancelled when the tunnel ends.
    """

    tunnel: TunnelControl
    directions: tuple[Direction, ...] = DIRECTIONS  # an instance may narrow this to leave a direction alone

    def bind(self, tunnel: TunnelControl) -> None:
        self.tunnel = tunnel

    async def client_to_upstream(self, data: bytes) -> bytes:
        return data

    async def upstream_to_client(self, data: bytes) -> bytes:
        return data

    async def at_eof(self, direction: Direction) -> bytes:
        """Bytes to send in `direction` after its last chunk, before the EOF is passed on."""
        return b""

    async def run(self) -> None:
        return None

    def transform(self, direction: Direction) -> Callable[[bytes], Awaitable[bytes]] | None:
        """The overridden transform for `direction`, or None when this stage leaves it alone."""
        overridden = direction in self.directions and _overrides(self, Stage, direction)
        return getattr(self, direction) if overridden else None

    def inspects(self, direction: Direction) -> bool:
        return direction in self.directions and (
            _overrides(self, Stage, direction) or _overrides(self, Stage, "at_eof")
        )

    def finished(self, direction: Direction) -> bool:
        """True once this stage wants no more of `direction` (a watcher that has seen what it needed):
        when every stage of a direction is finished, the relay carries the rest on its fast path and
        calls neither the transforms nor `at_eof` of that direction again."""
        return False


def _overrides(obj: object, base: type, method: str) -> bool:
    return getattr(type(obj), method) is not getattr(base, method)


def doc(help: str, unit: str = "") -> dict[str, str]:
    """Field metadata declaring a fault setting's help and unit, next to its type and default
    (mitmproxy `add_option` style): `rate_kbps: int = field(default=384, metadata=doc("cap", "kbit/s"))`."""
    return {"help": help, "unit": unit}


@dataclass(kw_only=True)
class Fault:
    """One deliberate misbehaviour. Subclass with `class X(Fault, name="x")` and decorate with
    `@dataclass(kw_only=True)`; declare settings as fields with `metadata=doc(help, unit)`; override the
    hooks it needs.

    Every fault is scoped by `hosts` (fnmatch patterns, case-insensitive; empty = every host) and
    `ports` (empty = every port). The server calls a fault's hooks only for requests in scope
    (`handle_client` excepted: it runs before the target is known).
    """

    name: ClassVar[str] = ""
    hosts: list[str] = field(
        default_factory=list,
        metadata=doc("only targets whose host matches one of these fnmatch patterns (empty: all)"),
    )
    ports: list[int] = field(default_factory=list, metadata=doc("only targets on these ports (empty: all)"))

    def __init_subclass__(cls, *, name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            if name in FAULTS and FAULTS[name].__qualname__ != cls.__qualname__:
                raise RuntimeError(
                    f"fault name {name!r} registered twice ({FAULTS[name].__qualname__}, {cls.__qualname__})"
                )
            cls.name = name
            FAULTS[name] = cls

    def __post_init__(self) -> None:
        for p in self.ports:
            if not 0 < p < 65536:
                raise ValueError(f"ports: {p} is outside 1-65535")

    def applies(self, host: str, port: int) -> bool:
        if self.ports and port not in self.ports:
            return False
        if self.hosts:
            host = host.lower()
            return any(fnmatch.fnmatchcase(host, p.lower()) for p in self.hosts)
        return True

    def overrides(self, hook: str) -> bool:
        return _overrides(self, Fault, hook)

    # -- lifecycle ------------------------------------------------------------------------------
    def attach(self, lab: LabServices) -> None:
        """Called once by whoever builds the proxy inside a lab, before `start`: take what the lab
        lends (tls_inspect takes its PKI). Most faults need nothing; a fault never attached uses
        its own defaults."""

    async def start(self) -> None:
        """Called by LabProxy.start once it listens (e.g. tls_inspect starts its engine)."""

    async def stop(self) -> None:
        """Called by LabProxy.stop after its tunnels ended; releases what start() took."""

    # -- hooks, in pipeline order ---------------------------------------------------------------
    async def handle_client(self, conn: ClientConn) -> bool:
        """Take over a whole client connection before it is parsed; True when it was handled."""
        return False

    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        """Rewrite the authentication decision: `answer` is None (let through) or the 407 to send."""
        return answer

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        """Refuse an authenticated request before any upstream work; None lets it through."""
        return None

    async def resolve(self, ctx: Ctx, host: str, port: int, next: ResolveNext) -> list[Address]:
        """Resolve (host, port) to addresses to try in order; raise `Refuse` to answer instead."""
        return await next(host, port)

    async def open_upstream(self, ctx: Ctx, host: str, port: int, next: OpenNext) -> socket.socket:
        """Return a connected non-blocking socket that stands for the target; raise `Refuse` to answer."""
        return await next(host, port)

    def established_response(self, ctx: Ctx, head: bytes) -> bytes:
        """Rewrite the bytes that announce the tunnel (default `HTTP/1.1 200 Connection established`)."""
        return head

    def stream(self, ctx: Ctx) -> Stage | None:
        """A fresh `Stage` for this tunnel, or None."""
        return None


# -- settings: validation and description ---------------------------------------------------------
# The settings are the fault's dataclass fields; `proxy_lab.typed` (the package's one validator)
# checks and converts them, and names the type as code writes it (`int`, `list[str]`, `'a'|'b'`).
def _settings(cls: type[Fault]) -> list[tuple[dataclasses.Field[Any], Any]]:
    return fields_of(cls)


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def make_fault(name: str, settings: dict[str, Any] | None = None) -> Fault:
    """Build a registered fault from scenario settings, validating every key and type.

    Raises ConfigError naming the fault, the key and what was expected.
    """
    load_all()
    cls = FAULTS.get(name)
    if cls is None:
        raise ConfigError(f"unknown fault {name!r}: expected one of {', '.join(sorted(FAULTS))}")
    try:
        return build(cls, dict(settings or {}), describe=type_name)
    except UnknownKeys as exc:
        raise ConfigError(f"fault {name}: unknown setting {exc.keys[0]!r}; expected one of {', '.join(exc.allowed)}") from exc
    except Invalid as exc:
        raise ConfigError(f"fault {name}: setting {exc.path} = {exc.got!r}: expected {exc.expected}") from exc
    except (ValueError, TypeError) as exc:  # the fault's own __post_init__ checks
        raise ConfigError(f"fault {name}: {exc}") from exc


def describe_faults() -> list[tuple[str, str, list[tuple[str, str, Any, str]]]]:
    """Every registered fault: (name, one-sentence doc, [(setting, type, default, help with unit)])."""
    load_all()
    out = []
    for name in sorted(FAULTS):
        cls = FAULTS[name]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows = []
        for f, tp in _settings(cls):
            helptext = f.metadata.get("help", "")
            if unit := f.metadata.get("unit", ""):
                helptext = f"{helptext} [{unit}]"
            rows.append((f.name, type_name(tp), _default(f), helptext))
        out.append((name, doc, rows))
    return out


def load_all() -> None:
    """Every fault is registered: kept for callers that ask for it before using `FAULTS`.

    The package `proxy_lab.proxy.faults` imports each of its fault modules, and Python imports a
    package before any module in it, so by the time this module can be called every fault has
    registered itself (this module never imports the package: that would be a loop).
    """
