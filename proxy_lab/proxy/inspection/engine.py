"""The inspection engine: one embedded mitmproxy 12 per process, on a thread and event loop of its own.

The engine is a `Master` with only the addons it needs (addons.py: proxy server, next-layer, TLS,
and the tunnel pairing; no DNS resolver, no onboarding app, no script loader, no flow store; it
writes nothing but its DH parameters file into the confdir, and contacts nothing but the relay).
It runs on its own event loop in a daemon thread: `Master.run` installs an eager task factory and
an exception handler on the loop it runs on, and mitmproxy keeps its options in process-global
state (`mitmproxy.ctx`), so it gets a loop of its own instead of changing the lab's. It listens on
127.0.0.1:<ephemeral>, mints leaf certificates with the corporate inspection CA
(`confdir = pki.corp_ca_combined()`), and verifies the cloud's certificates against the PB root
(`ssl_verify_upstream_trusted_ca`), as a corporate proxy trusts the public web.

No name ever reaches the system resolver: mitmproxy runs in upstream mode
(`upstream:http://127.0.0.1:<relay>`), so for every tunnel it opens one connection to the *address
of the upstream proxy* and sends `CONNECT host:port` there
(mitmproxy/proxy/layers/http/_upstream_proxy.py `HttpUpstreamProxy.start_handshake`; the only
`asyncio.open_connection` is on `connection.address`, the relay's IP, in mitmproxy/proxy/server.py).
The relay is ours (relay.py). mitmproxy's `DnsResolver` addon is not loaded and no DNS mode is set.

Lifecycle: the first stage to start starts the engine (`acquire`; about 0.3 s once mitmproxy is
imported; `warm_up()` does the import, 0.5-1.5 s, in the background beforehand); the last to stop
stops it and its thread (`release`). An engine still running at interpreter exit is stopped by an
atexit hook.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import logging
import threading
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

from proxy_lab.pki import PKI
from proxy_lab.proxy.inspection.relay import Relay
from proxy_lab.proxy.inspection.tunnels import InspectionError, Tunnels
from proxy_lab.resolver import Address

log = logging.getLogger("proxy_lab.proxy.inspection")

START_TIMEOUT_S = 10.0  # engine start, thread to listening socket
STOP_TIMEOUT_S = 5.0
STREAM_LARGE_BODIES = "256k"  # intercepted bodies above this are streamed, not buffered


class Latch:
    """A one-shot event set from any thread and awaited from any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._error: BaseException | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def is_set(self) -> bool:
        return self._set

    def set(self, error: BaseException | None = None) -> None:
        with self._lock:
            if self._set:
                return
            self._set, self._error = True, error
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(self._wake, fut, error)

    @staticmethod
    def _wake(fut: asyncio.Future[None], error: BaseException | None) -> None:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    async def wait(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._set:
                self._wake(fut, self._error)
            else:
                self._waiters.append((loop, fut))
        await asyncio.wait_for(fut, timeout_s)


class Engine:
    """The process's mitmproxy: its thread, loop, master, relay and the tunnels it knows."""

    def __init__(self, pki: PKI) -> None:
        self.confdir = pki.corp_ca_combined()
        self.upstream_ca = pki.pb_root.cert
        self.corp_ca_cert: Path = pki.corp_ca.cert
        self.key = (str(self.confdir), str(self.upstream_ca))
        self.users = 0
        self.stopping = False
        self.address: Address | None = None
        self.ready = Latch()
        self.done = Latch()
        self.tunnels = Tunnels()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master: Any = None
        self._relay_tasks: set[asyncio.Task[Any]] = set()  # one per relay connection, until it ends
        self._thread = threading.Thread(target=self._run, name="proxy-lab-inspection", daemon=True)

    # -- lifecycle (any thread) -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Ask the engine to stop (thread-safe); `done` is set once its thread has finished."""
        self.stopping = True
        master, loop = self._master, self._loop
        if master is not None:
            master.shutdown()
        elif loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: None)

    def join(self, timeout_s: float) -> None:
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    # -- the engine thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            _wait_for_warm_up()
            asyncio.run(self._main())
        except BaseException as exc:  # reported to whoever waits for the start
            self.ready.set(InspectionError(f"inspection engine failed: {exc!r}"))
        finally:
            self.ready.set(InspectionError("inspection engine stopped before it was ready"))
            self.done.set()

    async def _main(self) -> None:
        from mitmproxy import options
        from mitmproxy.master import Master

        from proxy_lab.proxy.inspection.addons import make_addons  # imports mitmproxy

        self._loop = asyncio.get_running_loop()
        quiet = logging.getLogger("mitmproxy")
        if quiet.level == logging.NOTSET:  # its per-connection INFO lines would drown the lab's log
            quiet.setLevel(logging.WARNING)
        serve = Relay(self.tunnels).serve

        async def relay_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._tracked(serve(reader, writer))

        relay = await asyncio.start_server(relay_connection, "127.0.0.1", 0)
        relay_port = relay.sockets[0].getsockname()[1]
        master: Any = None
        run: asyncio.Future[None] | None = None
        started: asyncio.Future[Any] | None = None
        try:
            opts = options.Options(
                mode=[f"upstream:http://127.0.0.1:{relay_port}"],
                listen_host="127.0.0.1",
                listen_port=0,
                confdir=str(self.confdir),
                ssl_verify_upstream_trusted_ca=str(self.upstream_ca),
            )
            master = Master(opts, with_termlog=False)
            tunnels, nextlayer, tlsconfig, proxyserver = make_addons(self.tunnels, self.corp_ca_cert)
            master.addons.add(tunnels, nextlayer, tlsconfig, proxyserver)
            opts.update(connection_strategy="eager", stream_large_bodies=STREAM_LARGE_BODIES)
            self._master = master
            if self.stopping:
                return
            run = asyncio.ensure_future(master.run())
            started = asyncio.ensure_future(tunnels.running_event.wait())
            await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
            addresses = proxyserver.listen_addrs()
            if not started.done() or not addresses:
                started.cancel()
                master.shutdown()
                with contextlib.suppress(Exception):
                    await run
                raise InspectionError("mitmproxy did not start listening (see the mitmproxy log above)")
            if self.stopping:  # a shutdown that came before Master.run cleared should_exit is not lost
                master.shutdown()
            host, port = addresses[0][:2]
            self.address = (str(host), int(port))
            log.info("inspection engine (mitmproxy) listening on %s:%s", host, port)
            self.ready.set()
            await run
        finally:
            # Master.__init__ puts a handler on the root logger that calls into this loop; Master.run
            # removes it only when it got as far as running. Remove it always (removeHandler is idempotent).
            legacy = getattr(master, "_legacy_log_events", None)
            if legacy is not None:
                legacy.uninstall()
            await _cancel_and_wait([t for t in (run, started) if t is not None])
            relay.close()
            await _cancel_and_wait(self._relay_tasks)
            close_clients = getattr(relay, "close_clients", None)  # Python 3.13+
            if close_clients is not None:
                close_clients()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(relay.wait_closed(), 1.0)
            await _cancel_and_wait(self._relay_tasks)  # connections accepted while the server closed

    async def _tracked(self, serving: Coroutine[Any, Any, None]) -> None:
        """Run one relay connection, its task referenced by the engine until it ends.

        `asyncio.start_server` references its callback's task only through the client transport's
        protocol, and a stream's protocol holds its reader weakly (asyncio/streams.py
        `StreamReaderProtocol`). Once mitmproxy half-closes its side, that transport leaves the
        selector while the relay still pumps the upstream's answer: nothing reached the task, and the
        garbage collector destroyed it pending ("Task was destroyed but it is pending!"), the rest
        of the answer with it. The engine keeps each one, and cancels and awaits those left when it
        stops."""
        task = asyncio.current_task()
        assert task is not None
        self._relay_tasks.add(task)
        try:
            await serving
        finally:
            self._relay_tasks.discard(task)


async def _cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], timeout_s: float = 1.0) -> None:
    """Cancel what is still pending and wait for it to end (a task left pending at loop close is
    destroyed pending); the current task is never among them."""
    pending = [t for t in tasks if not t.done() and t is not asyncio.current_task()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=timeout_s)


# -- one engine per process -----------------------------------------------------------------------
_warm_up_started = threading.Event()
_warm_up_thread: threading.Thread | None = None


def warm_up() -> None:
    """Import mitmproxy in a short-lived background thread (once), ahead of the first engine start.

    Importing `mitmproxy.master` imports every mitmproxy addon module: about 0.5 s on an idle machine
    and over 1.5 s on a busy one, paid once per process. The engine itself then starts in about 0.3 s.
    """
    global _warm_up_thread
    if _warm_up_started.is_set():
        return
    _warm_up_started.set()

    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module("mitmproxy.master")  # imports mitmproxy.addons and all its modules

    _warm_up_thread = threading.Thread(target=load, name="proxy-lab-mitmproxy-import", daemon=True)
    _warm_up_thread.start()


def _wait_for_warm_up() -> None:
    """Two threads importing mitmproxy's cyclic modules at once can see half-initialised modules."""
    thread = _warm_up_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join()


_engines_lock = threading.Lock()
_current: Engine | None = None


async def acquire(pki: PKI) -> Engine:
    """The running engine for `pki` (started when needed), counted as used until `release`."""
    global _current
    key = (str(pki.corp_ca_combined()), str(pki.pb_root.cert))
    while True:
        with _engines_lock:
            engine = _current
            if engine is None:
                engine = Engine(pki)
                engine.users = 1
                _current = engine
                engine.start()
                break
            if not engine.stopping:
                if engine.key != key:
                    raise InspectionError(
                        f"one inspection engine per process: it runs with confdir {engine.key[0]}, "
                        f"a stage asked for {key[0]} (stop the other stages first)"
                    )
                engine.users += 1
                break
            stopping = engine
        try:
            await stopping.done.wait(STOP_TIMEOUT_S)  # a stopping engine finishes before a new one starts
        except TimeoutError as exc:
            raise InspectionError(f"the previous inspection engine did not stop within {STOP_TIMEOUT_S:g} s") from exc
        with _engines_lock:
            if _current is stopping:
                _current = None
    try:
        await engine.ready.wait(START_TIMEOUT_S)
    except BaseException as exc:
        await release(engine)
        if isinstance(exc, TimeoutError):
            raise InspectionError(f"the inspection engine did not start within {START_TIMEOUT_S:g} s") from exc
        raise
    return engine


async def release(engine: Engine) -> None:
    """One user less; the last one stops the engine and waits for its thread to end."""
    with _engines_lock:
        engine.users -= 1
        if engine.users > 0:
            return
        engine.stopping = True
    engine.shutdown()
    with contextlib.suppress(TimeoutError):
        await engine.done.wait(STOP_TIMEOUT_S)
    engine.join(1.0)
    global _current
    with _engines_lock:
        if _current is engine:
            _current = None


@atexit.register
def _stop_at_exit() -> None:
    engine = _current
    if engine is not None:
        engine.shutdown()
        engine.join(STOP_TIMEOUT_S)


def engine_counts() -> tuple[int, int] | None:
    """(tunnels announced and open, mitmproxy connections bound) of the running engine, or None."""
    engine = _current
    return engine.tunnels.counts() if engine is not None else None
