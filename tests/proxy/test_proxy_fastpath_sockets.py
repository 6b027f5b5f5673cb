"""The plain path on bare sockets (fastpath.py, listener.py, poller.py): the cases its accept callback
does not finish by itself, back-pressure, resets, TCP_DEFER_ACCEPT, and the poller's own guarantees."""

import asyncio
import hashlib
import logging
import os
import socket
import struct
import time

import pytest
from proxy_testkit import settled, upstream_server

from proxy_lab.proxy import LabProxy, ProxyConfig, fastpath, splice
from proxy_lab.proxy.poller import IN, Poller
from proxy_lab.resolver import SystemResolver


def test_a_head_split_over_two_segments_still_takes_the_plain_tunnel(loop_factory):
    async def main():
        async def echo(r, w):
            while data := await r.read(65536):
                w.write(data)
            w.close()

        srv, port = await upstream_server(echo)
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
            await w.drain()
            await asyncio.sleep(0.1)  # the accept callback sees half a head: a ClientProtocol waits for the rest
            w.write(b"Host: x\r\n\r\nfirst")
            assert await r.readuntil(b"\r\n\r\n") == fastpath.ESTABLISHED
            assert await r.readexactly(5) == b"first"
            assert any(isinstance(t, fastpath.PlainTunnel) for t in proxy._tunnels)  # not the general Tunnel
            w.write(b"second")
            assert await r.readexactly(6) == b"second"
            w.close()
            await settled(proxy)
            closed = [rec for rec in proxy.log if rec.event == "tunnel_closed"]
            assert len(closed) == 1 and "11 B up, 11 B down" in closed[0].message, closed
            assert proxy.stats.connections == 1 and proxy.stats.tunnels == 1 and not proxy._conns
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_a_slow_reader_holds_at_most_one_read_in_the_proxy(loop_factory, monkeypatch):
    """Back-pressure on the event-loop relay (splice off): the side that sends is not read while the
    other has bytes waiting, and every byte arrives in order."""
    monkeypatch.setattr(splice, "can_splice", lambda: False)
    size = 16 << 20
    payload = os.urandom(1 << 20) * 16

    async def main():
        async def source(r, w):
            w.write(payload)
            await w.drain()
            w.close()

        srv, port = await upstream_server(source)
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address, limit=1 << 16)
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert await r.readuntil(b"\r\n\r\n") == fastpath.ESTABLISHED
            await asyncio.sleep(0.5)  # not reading: the proxy must stop reading the source
            (tunnel,) = list(proxy._tunnels)
            assert tunnel.down.pending, "a write to the stalled client should be waiting"
            assert len(tunnel.down.pending) <= len(proxy._poller.read_buffer)
            moved = tunnel.bytes_upstream_to_client
            await asyncio.sleep(0.3)
            assert tunnel.bytes_upstream_to_client == moved  # nothing more was read meanwhile
            digest = hashlib.sha256()
            got = 0
            while chunk := await r.read(1 << 20):
                digest.update(chunk)
                got += len(chunk)
            assert got == size and digest.digest() == hashlib.sha256(payload).digest()
            w.close()
            await settled(proxy)
            assert proxy.stats.bytes_upstream_to_client == size
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_a_client_reset_closes_the_upstream_and_is_recorded(loop_factory):
    async def main():
        upstream_saw_eof = asyncio.Event()

        async def sink(r, w):
            await r.read()
            upstream_saw_eof.set()
            w.close()

        srv, port = await upstream_server(sink)
        async with LabProxy(ProxyConfig(), SystemResolver()) as proxy:
            loop = asyncio.get_running_loop()
            s = socket.create_connection(proxy.address)
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nabc".encode())
            s.setblocking(False)
            head = await asyncio.wait_for(loop.sock_recv(s, 100), 5)
            assert head == fastpath.ESTABLISHED
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()  # RST
            await asyncio.wait_for(upstream_saw_eof.wait(), 5)
            await settled(proxy)
            closed = [rec for rec in proxy.log if rec.event == "tunnel_closed"][-1]
            assert "3 B up" in closed.message and "client connection lost" in closed.message, closed.message
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


@pytest.mark.parametrize("defer", [True, False])
def test_defer_accept_counts_a_silent_client_only_once_it_speaks(defer, loop_factory):
    async def main():
        async def echo(r, w):
            w.write(await r.read(1))
            await w.drain()
            w.close()

        srv, port = await upstream_server(echo)
        async with LabProxy(ProxyConfig(defer_accept=defer), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            await asyncio.sleep(0.2)
            # With TCP_DEFER_ACCEPT the kernel holds the silent connection; without, it is accepted.
            assert proxy.stats.connections == (0 if defer else 1)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nx".encode())
            assert await r.readuntil(b"\r\n\r\n") == fastpath.ESTABLISHED
            assert await r.readexactly(1) == b"x"
            assert proxy.stats.connections == 1
            w.close()
            await settled(proxy)
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_poller_survives_a_failing_handler(loop_factory, caplog):
    async def main():
        loop = asyncio.get_running_loop()
        poller = Poller(loop)
        a, b = socket.socketpair()
        c, d = socket.socketpair()
        seen: list[bytes] = []
        done = asyncio.Event()

        def broken(events):
            raise RuntimeError("handler bug")

        def fine(events):
            assert poller.on_thread  # handlers run on the poller's thread
            seen.append(d.recv(10))
            loop.call_soon_threadsafe(done.set)

        poller.call(poller.register, a.fileno(), IN, broken)
        poller.call(poller.register, d.fileno(), IN, fine)
        b.send(b"1")
        c.send(b"2")
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0.05)  # a level-triggered fd still registered would call broken() again
        assert seen == [b"2"]
        assert a.fileno() not in poller and d.fileno() in poller
        poller.close()
        for s in (a, b, c, d):
            s.close()

    with caplog.at_level(logging.ERROR, logger="proxy_lab.proxy"):
        asyncio.run(main(), loop_factory=loop_factory)
    assert sum("handler of descriptor" in r.message for r in caplog.records) == 1


def test_poller_runs_calls_in_order_and_timers_when_due_on_its_thread(loop_factory):
    async def main():
        loop = asyncio.get_running_loop()
        poller = Poller(loop)
        order: list[str] = []
        fired = asyncio.Event()

        def later(name):
            assert poller.on_thread
            order.append(name)
            if name == "late":
                loop.call_soon_threadsafe(fired.set)

        def arm():
            poller.call_later(0.2, later, "late")
            poller.call_later(0.05, later, "early")
            poller.call_later(0.1, later, "cancelled").cancel()

        started = time.monotonic()
        for name in ("one", "two", "three"):
            poller.call(order.append, name)
        poller.call(arm)
        await asyncio.wait_for(fired.wait(), 5)
        assert time.monotonic() - started >= 0.2
        assert order == ["one", "two", "three", "early", "late"]
        poller.close()
        assert not poller._thread.is_alive()
        poller.call(order.append, "after close")  # dropped, not an error
        assert order[-1] == "late"

    asyncio.run(main(), loop_factory=loop_factory)
