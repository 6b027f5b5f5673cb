"""curl, a real client, reaches a loopback HTTP server through the lab proxy with `-p` (CONNECT) and Basic auth.

curl does not resolve the target when it tunnels through an HTTP proxy: it sends `CONNECT
web.lab.test:PORT`, and the proxy's MapResolver is the only thing that knows the name.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from proxy_lab.proxy import ProxyConfig
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import lab_proxy, run, upstream

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed")


async def http_hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        body = b"hello through the lab proxy\n"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
    finally:
        writer.close()


async def curl(proxy_url: str, user: str, url: str) -> tuple[int, str, str]:
    assert CURL is not None
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }  # no *_proxy
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "5", "-p", "-x", proxy_url, "--proxy-user", user, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_curl_tunnels_to_a_name_only_the_proxy_can_resolve() -> None:
    async def scenario() -> None:
        async with upstream(http_hello) as up:
            resolver = MapResolver({("web.lab.test", None): ("127.0.0.1", up.port)})
            async with lab_proxy(ProxyConfig(users={"meter": "S3cret:pw"}), resolver) as proxy:
                code, out, err = await curl(proxy.url, "meter:S3cret:pw", f"http://web.lab.test:{up.port}/")
                assert (code, out) == (0, "hello through the lab proxy\n"), err
                assert any(
                    r.event == "tunnel_open" and r.target == f"web.lab.test:{up.port}" for r in proxy.log
                )
                # negative control: the wrong password stops curl at the proxy's 407
                code, out, err = await curl(proxy.url, "meter:wrong", f"http://web.lab.test:{up.port}/")
                assert code != 0 and "407" in err and out == ""

    run(scenario(), timeout_s=30)
