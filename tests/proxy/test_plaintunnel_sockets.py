"""The plain path on bare sockets (plainpath.py, plaintunnel.py, listener.py, poller.py): the cases its
accept callback does not finish by itself, back-pressure, resets, TCP_DEFER_ACCEPT, and the poller's
own guarantees."""

import asyncio
import hashlib
import logging
import os
import socket
import struct
import time

import pytest

from proxy_lab.proxy import LabProxy, ProxyConfig, splice
from proxy_lab.proxy.poller import IN, Poller
from proxy_lab.proxy.responses import ESTABLISHED
from proxy_lab.resolver import SystemResolver
from tests.proxy.proxy_testkit import eventually, settled, upstream_server

PLAIN = ProxyConfig(plain_path=True)


def test_a_head_split_over_two_segments_still_takes_the_plain_tunnel(loop_factory):
    async def main():
        async def echo(r, w):
            while data := await r.read(65536):
                w.write(data)
            w.close()

        srv, port = await upstream_server(echo)
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
            await w.drain()
            await asyncio.sleep(0.1)  # the accept callback sees half a head: a ClientProtocol waits for the rest
            w.write(b"Host: x\r\n\r\nfirst")
            assert await r.readuntil(b"\r\n\r\n") == ESTABLISHED
            assert await r.readexactly(5) == b"first"
            assert proxy.plain is not None and proxy.plain.stats.tunnels_open == 1  # not the general Tunnel
            w.write(b"second")
            assert await r.readexactly(6) == b"second"
            w.close()
            await settled(proxy)
            closed = [rec for rec in proxy.log if rec.event == "tunnel_closed"]
            assert len(closed) == 1 and "11 B up, 11 B down" in closed[0].message, closed
            assert proxy.stats.connections == 1 and proxy.stats.tunnels == 1 and proxy.stats.connections_open == 0
        srv.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_a_slow_reader_stops_the_proxy_reading_the_sender(loop_factory, monkeypatch):
    """Back-pressure on the poller's relay (splice off): while the client does not read, the proxy
    stops reading the upstream, so the upstream's writes stall far short of what it has to send;
    once the client reads, every byte arrives in order."""
    monkeypatch.setattr(splice, "can_splice", lambda: False)
    size = 64 << 20
    payload = os.urandom(1 << 20) * 64
    chunk = 1 << 16

    async def main():
        sent = [0]  # bytes the upstream's socket took (each chunk's drain done)

        async def source(r, w):
            for start in range(0, size, chunk):
                w.write(payload[start : start + chunk])
                await w.drain()
                sent[0] += chunk
            w.close()

        srv, port = await upstream_server(source)
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address, limit=1 << 16)
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert await r.readuntil(b"\r\n\r\n") == ESTABLISHED
            # not reading: wait (bounded) until the upstream's writes stop moving
            last, still = -1, 0
            for _ in range(200):
                await asyncio.sleep(0.05)
                still = still + 1 if sent[0] == last else 0
                last = sent[0]
                if still >= 6:  # 0.3 s without progress
                    break
            assert still >= 6, f"the upstream kept sending ({sent[0]} B) while the client read nothing"
            # kernel buffers on the way hold a few MiB at most: the proxy did not read the rest
            assert sent[0] < size // 2, sent[0]
            digest = hashlib.sha256()
            got = 0
            while data := await asyncio.wait_for(r.read(1 << 20), 10):
                digest.update(data)
                got += len(data)
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
        async with LabProxy(PLAIN, SystemResolver()) as proxy:
            loop = asyncio.get_running_loop()
            s = socket.create_connection(proxy.address)
            s.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nabc".encode())
            s.setblocking(False)
            head = await asyncio.wait_for(loop.sock_recv(s, 100), 5)
            assert head == ESTABLISHED
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
        async with LabProxy(ProxyConfig(plain_path=True, defer_accept=defer), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            # With TCP_DEFER_ACCEPT the kernel holds the silent connection; without, it is accepted.
            if defer:
                await asyncio.sleep(0.2)  # an absence: watched for a while
                assert proxy.stats.connections == 0
            else:
                await eventually(lambda: proxy.stats.connections == 1, "the silent connection accepted")
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nx".encode())
            assert await r.readuntil(b"\r\n\r\n") == ESTABLISHED
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
        assert poller.running
        poller.close()
        assert not poller.running
        poller.call(order.append, "after close")  # dropped, not an error
        assert order[-1] == "late"

    asyncio.run(main(), loop_factory=loop_factory)
