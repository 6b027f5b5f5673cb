"""The plain path is a switch: the same CONNECTs through a lab proxy with it on and off give the same
answers, the same records and the same counters, so a verdict never depends on which relay carried it.

`proxy-lab proxy` turns the plain path on; embedded proxies (scenario runs, `check --lab`, the
pytest plugin) leave it off. Each scenario below runs twice, once per setting, against the same
kinds of upstream: tunnels that carry bytes both ways (with Basic credentials, and bytes pipelined
after the head), an upstream that closes at once, a refused upstream (a closed port), and requests
the plain path never takes (no credentials, an unknown name, the proxy itself).
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from proxy_lab.proxy import LabProxy, ProxyConfig, ProxyLogRecord
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, closed_port, echo, run, settled, upstream

CREDS = "Basic " + base64.b64encode(b"meter:Postage-2020!").decode()
SCENARIO_EVENTS = ("tunnel_open", "tunnel_closed", "refused", "client_error")  # not listening/stopped


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@asynccontextmanager
async def lab(plain_path: bool) -> AsyncIterator[LabProxy]:
    async with upstream(echo) as up, upstream(close_at_once) as closing:
        resolver = MapResolver({
            ("echo.lab.test", None): ("127.0.0.1", up.port),
            ("closing.lab.test", None): ("127.0.0.1", closing.port),
            ("closed.lab.test", None): ("127.0.0.1", closed_port()),
        })  # fmt: skip
        config = ProxyConfig(users={"meter": "Postage-2020!"}, plain_path=plain_path)
        async with LabProxy(config, resolver) as proxy:
            yield proxy


async def exchange(proxy: LabProxy, head: bytes, send: bytes = b"") -> tuple[bytes, bytes]:
    """Send a CONNECT head (and `send` in the same segment), half-close, read everything back:
    the answer's status line, and what came through the tunnel (refusals: nothing)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(*proxy.address), TIMEOUT_S)
    writer.write(head + send)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
    status = head.split(b"\r\n", 1)[0]
    if status.startswith(b"HTTP/1.1 200"):
        writer.write_eof()
    rest = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    await settled(proxy)  # one request's records are all in before the next one's
    return status, rest if status.startswith(b"HTTP/1.1 200") else b""


def connect(target: str, auth: bool = True) -> bytes:
    """A CONNECT head; without credentials it says `Connection: close` (no retry after the 407)."""
    fields = f"Proxy-Authorization: {CREDS}\r\n" if auth else "Connection: close\r\n"
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{fields}\r\n".encode()


async def scenario(proxy: LabProxy) -> list[tuple[bytes, bytes]]:
    host, port = proxy.address
    return [
        await exchange(proxy, connect("echo.lab.test:443"), b"ping"),
        await exchange(proxy, connect("echo.lab.test:5938"), b"x" * 70_000),  # pipelined, several reads
        await exchange(proxy, connect("closing.lab.test:80")),
        await exchange(proxy, connect("closed.lab.test:443")),  # refused: 503 ERR_CONNECT_FAIL 111
        await exchange(proxy, connect("echo.lab.test:443", auth=False)),  # 407
        await exchange(proxy, connect("nowhere.lab.test:443")),  # 503 ERR_DNS_FAIL
        await exchange(proxy, connect(f"{host}:{port}")),  # 403 forwarding loop
    ]


_EPHEMERAL = re.compile(r"127\.0\.0\.1:\d+")


def comparable(record: ProxyLogRecord) -> tuple[object, ...]:
    """A record without what differs from run to run: client and upstream ports, the time."""
    return (
        record.event,
        _EPHEMERAL.sub("127.0.0.1:P", record.target),
        record.status,
        _EPHEMERAL.sub("127.0.0.1:P", record.reason),
        _EPHEMERAL.sub("127.0.0.1:P", record.message),
    )


def run_scenario(plain_path: bool) -> tuple[list[tuple[bytes, bytes]], list[tuple[object, ...]], dict[str, object], int]:
    async def main() -> tuple[list[tuple[bytes, bytes]], list[tuple[object, ...]], dict[str, object], int]:
        async with lab(plain_path) as proxy:
            answers = await scenario(proxy)
            records = [comparable(r) for r in proxy.log if r.event in SCENARIO_EVENTS]
            plain_tunnels = proxy.plain.stats.tunnels if proxy.plain is not None else 0
            return answers, records, proxy.stats.to_dict(), plain_tunnels

    return run(main(), timeout_s=30)


def test_the_same_connects_give_the_same_answers_records_and_counters_whichever_path_carries_them() -> None:
    general = run_scenario(plain_path=False)
    plain = run_scenario(plain_path=True)
    # The switch did switch: the plain path carried the three tunnels with credentials, and the
    # general path all of them when it was off.
    assert (general[3], plain[3]) == (0, 3)
    answers, records, stats = general[:3]
    assert plain[0] == answers
    assert plain[1] == records
    assert plain[2] == stats
    # What was compared is what the scenario did (negative controls: these differ when it goes wrong).
    assert [a[0].split(b" ")[1] for a in answers] == [b"200", b"200", b"200", b"503", b"407", b"503", b"403"]
    assert answers[0][1] == b"ping[eof after 4 bytes]"
    assert [r[0] for r in records] == [
        "tunnel_open", "tunnel_closed", "tunnel_open", "tunnel_closed", "tunnel_open", "tunnel_closed",
        "refused", "refused", "refused", "refused",
    ]  # fmt: skip
    assert records[1][4] == "tunnel echo.lab.test:443 for 127.0.0.1:P closed: 4 B up, 23 B down (both sides closed)"
    assert records[6][2:4] == (503, "upstream 127.0.0.1:P: Connection refused")
    assert stats["tunnels"] == 3 and stats["connections"] == 7 and stats["refusals"] == {503: 2, 407: 1, 403: 1}
    assert stats["bytes_client_to_upstream"] == 4 + 70_000


@pytest.mark.parametrize("plain_path", [False, True])
def test_a_records_time_says_when_it_happened_on_either_path(plain_path: bool) -> None:
    async def main() -> list[float]:
        async with lab(plain_path) as proxy:
            loop = asyncio.get_running_loop()
            before = loop.time()
            await exchange(proxy, connect("echo.lab.test:443"), b"ping")
            await asyncio.sleep(0.2)  # the records are read later than they were made
            elapsed = loop.time() - before
            times = [r.time for r in proxy.log if r.event in SCENARIO_EVENTS]
            assert len(times) == 2 and times == sorted(times)
            assert max(times) - min(times) < elapsed  # not the time the log was read
            return times

    run(main())
