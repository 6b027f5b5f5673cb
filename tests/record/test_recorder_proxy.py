"""The recorder on a real lab proxy (no upstream): what each kind of tunnel end and refusal records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxy_lab.proxy import ProxyConfig, make_fault
from proxy_lab.record import Recorder
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import client, lab_proxy, run, settled, upstream


def _record(tmp_path: Path, faults: list[Any], script: Any) -> list[dict[str, Any]]:
    path = tmp_path / "r.jsonl"
    recorder = Recorder(path)

    async def main() -> None:
        async with upstream() as echo, lab_proxy(
            ProxyConfig(faults=faults, watcher=recorder), MapResolver({("dlsdlp1.pb.com", None): echo.address})
        ) as lab:
            await script(lab)
            await settled(lab)

    run(main(), timeout_s=30)
    recorder.close()
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_tunnel_cut_by_a_lab_fault_is_recorded_as_reset_with_the_faults_reason(tmp_path: Path) -> None:
    async def script(lab: Any) -> None:
        c = await client(lab)
        assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
        c.send(b"x" * 100)
        try:
            await c.read_to_eof()
        except ConnectionResetError:
            pass  # the fault's RST
        await c.close()

    (line,) = _record(tmp_path, [make_fault("reset_after", {"after_bytes": 10})], script)
    assert line["end"] == "reset" and "reset_after" in line["why"]
    assert line["upstream"] is None and line["refused_by"] is None and line["service"] == "downloads"


def test_a_quiet_tunnel_closed_by_the_idle_timeout_is_recorded_as_such(tmp_path: Path) -> None:
    async def script(lab: Any) -> None:
        c = await client(lab)
        assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
        assert await c.read_to_eof() == b""  # nothing sent: the fault closes it
        await c.close()

    (line,) = _record(tmp_path, [make_fault("idle_timeout", {"idle_s": 0.2})], script)
    assert line["end"] == "idle timeout"


def test_a_normal_tunnel_records_who_closed_first_and_a_lab_refusal_names_the_lab(tmp_path: Path) -> None:
    async def script(lab: Any) -> None:
        c = await client(lab)
        assert (await c.connect("dlsdlp1.pb.com:443")).status == 200
        c.send(b"hello")
        assert await c.read_exactly(5) == b"hello"
        c.writer.write_eof()
        await c.read_to_eof()
        await c.close()
        c = await client(lab)
        assert (await c.connect("dlsdlp1.pb.com:80")).status == 403
        await c.close()

    tunnel, refused = _record(tmp_path, [make_fault("allow_ports", {"preset": "ssl_ports_only"})], script)
    assert tunnel["end"] == "client closed" and (tunnel["bytes_up"], tunnel["lab"]["status"]) == (5, 200)
    assert refused["refused_by"] == "lab" and refused["lab"]["status"] == 403
    assert ["X-Squid-Error", "ERR_ACCESS_DENIED 0"] in refused["lab"]["headers"]


def test_a_refusal_that_took_time_records_the_time_from_the_request_to_the_answer(tmp_path: Path) -> None:
    async def script(lab: Any) -> None:
        c = await client(lab)
        assert (await c.connect("unknown.example:443")).status == 503  # after the link's 2 x 150 ms
        await c.close()
        c = await client(lab)
        assert (await c.connect("dlsdlp1.pb.com:80")).status == 403  # refused at once: the control
        await c.close()

    slow, quick = _record(
        tmp_path, [make_fault("latency", {"delay_ms": 150}), make_fault("allow_ports", {"ports_allowed": [443]})], script
    )
    assert slow["refused_by"] == "lab" and slow["lab"]["status"] == 503 and slow["duration_s"] >= 0.29
    assert quick["lab"]["status"] == 403 and quick["duration_s"] < slow["duration_s"]
