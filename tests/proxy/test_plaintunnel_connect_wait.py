"""An upstream that does not answer at once: the plain path waits for it within the connect timeout (504 after)."""

import asyncio
import socket
import time

from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.resolver import SystemResolver


def full_listener():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue (backlog 0 still takes 1): later SYNs are dropped
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.1)
    return ls, port, fillers


def test_connect_that_does_not_complete_at_once_times_out_as_504(loop_factory):
    async def main():
        ls, port, fillers = full_listener()
        async with LabProxy(ProxyConfig(plain_path=True, connect_timeout_s=0.5), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            t0 = time.monotonic()
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 504"), head
            assert 0.4 < time.monotonic() - t0 < 2
            assert proxy.plain is not None and proxy.plain.stats.requests == 1  # the plain path waited
            w.close()
        for s in fillers:
            s.close()
        ls.close()

    asyncio.run(main(), loop_factory=loop_factory)


def test_connect_that_completes_later_is_announced_then(loop_factory):
    async def main():
        ls, port, fillers = full_listener()
        async with LabProxy(ProxyConfig(plain_path=True, connect_timeout_s=5), SystemResolver()) as proxy:
            r, w = await asyncio.open_connection(*proxy.address)
            w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\nearly".encode())
            await asyncio.sleep(0.3)
            ls.setblocking(False)
            accepted = []

            async def drain():
                while True:
                    try:
                        c, _ = ls.accept()
                        accepted.append(c)
                    except BlockingIOError:
                        await asyncio.sleep(0.05)

            t = asyncio.ensure_future(drain())
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 6)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert proxy.plain is not None and proxy.plain.stats.tunnels == 1
            await asyncio.sleep(0.3)
            t.cancel()
            got = b""
            for c in accepted:
                c.setblocking(True)
                c.settimeout(0.2)
                try:
                    got += c.recv(100)
                except (TimeoutError, OSError):
                    pass
            assert b"early" in got
            w.close()
            for c in accepted:
                c.close()
        for s in fillers:
            s.close()
        ls.close()

    asyncio.run(main(), loop_factory=loop_factory)
