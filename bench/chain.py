"""`python -m bench.chain`: the cost of chaining and recording (docs/performance.md, last section).

1. Record: 100,000 tunnels written by the recorder (`proxy_lab.record.Recorder`, the lines the lab
   proxy writes, made without sockets) under a size limit; the file is checked against the limit,
   then `proxy-lab observe` (`proxy_lab.observe`) reads it back, timed.
2. Throughput: bulk MB/s to the same loopback sink, integrity checked (bench.measure.bulk), through
   `proxy-lab proxy` alone (as shipped); through an unchained `proxy-lab proxy` in front of it with
   the client sending both CONNECTs (the same two-proxy route, unchained relay); and through
   `proxy-lab proxy --upstream` in front of it (the chained relay; with and without `--record`).
   The issue's target: the chained relay within 10% of the unchained lab proxy.

Bounded in count and time; loopback only. `--markdown` appends the results as a section to PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import measure, procs
from bench.client import Route
from bench.peers import Lab, PeerSkipped
from bench.servers import TargetPorts, TargetServers

MIB = 1 << 20


# -- 1. the record ---------------------------------------------------------------------------------
class _Moved:
    """What the recorder reads of a finished tunnel (the TunnelControl counters)."""

    def __init__(self, up: int, down: int) -> None:
        self.bytes_client_to_upstream, self.bytes_upstream_to_client = up, down
        self.first_end = "client_to_upstream"


def record_bench(workdir: Path, tunnels: int, max_bytes: int) -> dict[str, Any]:
    from proxy_lab.catalog import load_catalog
    from proxy_lab.observe import observe, read_records
    from proxy_lab.proxy.chain import UpstreamProxy
    from proxy_lab.proxy.events import Refusal
    from proxy_lab.proxy.faults.base import Ctx
    from proxy_lab.record import Recorder

    targets = [(e.host, e.port) for e in load_catalog().endpoints()] + [("telemetry.example.net", 443)]
    path = workdir / "record.jsonl"
    rec = Recorder(path, max_bytes=max_bytes, upstream=UpstreamProxy("10.0.0.5", 8080, "meter", "secret"))
    largest = 0
    started = time.perf_counter()
    for n in range(tunnels):
        host, port = targets[n % len(targets)]
        ctx = Ctx(client=("192.0.2.10", 30000 + n % 30000), proxy=("127.0.0.1", 3128), host=host, port=port)
        if n % 10 == 9:  # one in ten refused by the corporate proxy
            rec.refused(ctx, Refusal(403, "Forbidden", (("X-Squid-Error", "ERR_ACCESS_DENIED 0"),), why="port rule"))
        else:
            stage = rec.stage(ctx)
            assert stage is not None
            rec.closed(ctx, _Moved(1500 + n % 700, 40000 + n % 9000), "")  # type: ignore[arg-type]
        if n % 1000 == 0:
            largest = max(largest, path.stat().st_size)
    write_s = time.perf_counter() - started
    rec.close()
    size = path.stat().st_size
    rotated = path.with_name(path.name + ".1")
    rotated_size = rotated.stat().st_size if rotated.exists() else 0
    started = time.perf_counter()
    records = read_records([p for p in (rotated, path) if p.exists()])
    result = observe(records, sources=[str(path)])
    observe_s = time.perf_counter() - started
    return {
        "tunnels": tunnels, "max_bytes": max_bytes, "size_bytes": size, "rotated_bytes": rotated_size,
        "largest_seen_bytes": max(largest, size), "rotations": rec.rotations, "write_s": round(write_s, 3),
        "lines_read": len(records), "contacts": len(result.contacts), "observe_s": round(observe_s, 3),
        "under_limit": max(largest, size, rotated_size) <= max_bytes, "observe_under_5s": observe_s < 5.0,
    }  # fmt: skip


# -- 2. throughput -----------------------------------------------------------------------------------
class ChainedLab(Lab):
    """`proxy-lab proxy --upstream http://127.0.0.1:UP [--record PATH]` in front of another lab proxy."""

    def __init__(self, upstream_port: int, record: Path | None, name: str) -> None:
        super().__init__(name=name)
        self.upstream_port, self.record = upstream_port, record
        self.settings = f"proxy-lab proxy --upstream http://127.0.0.1:UPSTREAM{' --record PATH' if record else ''}"

    def argv(self, workdir: Path, targets: TargetPorts) -> list[str]:
        argv = [*super().argv(workdir, targets), "--upstream", f"http://{procs.LOOPBACK}:{self.upstream_port}"]
        return argv + (["--record", str(self.record)] if self.record else [])


class NestedLab(Lab):
    """An unchained lab proxy in front of the same upstream: the client CONNECTs through it to the
    upstream, then through the upstream to the target (a proxy chain the client builds itself)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(name="unchained, same route")
        self.upstream_port = upstream_port
        self.settings = "proxy-lab proxy; the client sends CONNECT 127.0.0.1:UPSTREAM, then CONNECT target inside"

    def route(self, target: str) -> Route:
        inner = super().route(target)
        return Route(inner.port, f"{procs.LOOPBACK}:{self.upstream_port}", then_connect=inner.connect_to)


ROUTES = ("lab", "unchained, same route", "chained", "chained+record")


def throughput_bench(workdir: Path, total_bytes: int, reps: int) -> dict[str, Any]:
    """Bulk MB/s on four routes to the same sink (the module docstring); the ratios of the chained
    ones to the lab proxy alone and to the unchained lab proxy on the same two-proxy route."""
    out: dict[str, Any] = {"total_bytes": total_bytes, "reps": reps, "mb_s": {}, "cpu_ms_per_mb": {}}
    with TargetServers(workdir) as targets:
        base = Lab(name="lab")
        base.start(workdir, targets)
        peers: list[Lab] = [base]
        try:
            for peer in (
                NestedLab(base.port),
                ChainedLab(base.port, None, "chained"),
                ChainedLab(base.port, workdir / "chained.jsonl", "chained+record"),
            ):
                peer.start(workdir, targets)
                peers.append(peer)
            for tunnels in (1, 4):
                # Interleaved repetitions, so a burst of other work on the machine hits every route alike.
                best: dict[str, float] = {}
                cpu: dict[str, list[float]] = {}
                for _ in range(reps):
                    for peer in peers:
                        r = measure.bulk(peer.route("sink"), tunnels, total_bytes, "compare", peer.pid,
                                         min_seconds=0.5, max_rounds=4)  # fmt: skip
                        if not r.valid:
                            raise RuntimeError(f"{peer.name}: {r.detail}")
                        best[peer.name] = max(best.get(peer.name, 0.0), r.mb_per_s)
                        if r.cpu_s is not None and r.total_bytes:
                            cpu.setdefault(peer.name, []).append(r.cpu_s * 1000 / (r.total_bytes / 1e6))
                for name, value in best.items():
                    out["mb_s"][f"{name} x{tunnels}"] = round(value, 1)
                for name, values in cpu.items():  # the measured (front) proxy's own process tree only
                    out["cpu_ms_per_mb"][f"{name} x{tunnels}"] = round(min(values), 3)
        except PeerSkipped as exc:
            out["error"] = str(exc)
        finally:
            for peer in peers:
                peer.stop()
    mb = out["mb_s"]
    for tunnels in (1, 4):
        lab, same = mb.get(f"lab x{tunnels}"), mb.get(f"unchained, same route x{tunnels}")
        for name in ("chained", "chained+record"):
            value = mb.get(f"{name} x{tunnels}")
            if lab and value:
                out[f"{name} x{tunnels} ratio"] = round(value / lab, 3)
            if same and value:
                out[f"{name} x{tunnels} ratio same route"] = round(value / same, 3)
        if lab and same:
            out[f"unchained, same route x{tunnels} ratio"] = round(same / lab, 3)
    return out


def markdown(records: list[dict[str, Any]], throughput: dict[str, Any] | None) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        "", "## Chaining and recording (`python -m bench.chain`)", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cores} cores, loopback only, with other "
        "work sharing the machine. Targets (issue 'watch a real meter'): a 100,000-tunnel recording stays "
        "under its size limit and `observe` reads it in under 5 s; the chained relay within 10% of the "
        "unchained lab proxy's bulk throughput.", "",
    ]  # fmt: skip
    for record in records:
        lines += _record_lines(record)
    if throughput:
        lines += _throughput_lines(throughput)
    return "\n".join(lines) + "\n"


def _record_lines(record: dict[str, Any]) -> list[str]:
    return [
        f"Record: {record['tunnels']:,} tunnels with `--record-max-bytes {record['max_bytes']:,}`: the file "
        f"peaked at {record['largest_seen_bytes']:,} bytes ({'within' if record['under_limit'] else 'OVER'} the "
        f"limit; {record['rotations']} rotations, PATH.1 {record['rotated_bytes']:,} bytes); writing took "
        f"{record['write_s']} s; `observe` read {record['lines_read']:,} lines (PATH.1 and PATH) in "
        f"{record['observe_s']} s ({'under' if record['observe_under_5s'] else 'NOT under'} 5 s).", "",
    ]  # fmt: skip


def _throughput_lines(throughput: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if not throughput:
        return lines
    lines += ["Bulk MB/s to the loopback sink (best of the repetitions, the routes interleaved), the ratio to the "
              "lab proxy alone, the ratio to the unchained lab proxy on the same two-proxy route, and the CPU the "
              "front proxy process itself spent per MB:", "",
              "| route | 1 tunnel MB/s | vs lab | vs same route | CPU ms/MB | 4 tunnels MB/s | vs lab | vs same route | CPU ms/MB |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    mb, cpu = throughput["mb_s"], throughput.get("cpu_ms_per_mb", {})
    for name in ROUTES:
        cells = []
        for t in (1, 4):
            ratio = throughput.get(f"{name} x{t} ratio", 1.0 if name == "lab" else "-")
            same = throughput.get(f"{name} x{t} ratio same route", 1.0 if name == "unchained, same route" else "-")
            cells += [str(mb.get(f"{name} x{t}", "-")), str(ratio), str(same), str(cpu.get(f"{name} x{t}", "-"))]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    same_met = all(throughput.get(f"chained x{t} ratio same route", 0) >= 0.9 for t in (1, 4))
    alone_met = all(throughput.get(f"chained x{t} ratio", 0) >= 0.9 for t in (1, 4))
    lines += [
        "", f"Target 'chained relay within 10% of the unchained lab proxy', on the same route (both in front of "
        f"the same upstream proxy): {'PASS' if same_met else 'FAIL'}. Against the lab proxy alone, a route with one "
        f"proxy fewer: {'PASS' if alone_met else 'FAIL'}.", "",
        "Routes: `lab` is client -> lab proxy -> sink. The three others cross two proxies, the second one a lab "
        "proxy standing in for the corporate proxy, on the same 2 cores: `unchained, same route` is an unchained "
        "lab proxy that the client asks for `CONNECT upstream`, then `CONNECT sink` inside that tunnel (the chain "
        "built by the client, so the front proxy relays as it does alone); `chained` is `proxy-lab proxy "
        "--upstream`, which sends the second CONNECT itself; `chained+record` adds `--record`. The same-route "
        "ratio is the cost of the chained relay; the ratio to `lab` also carries the second proxy's work and the "
        "third TCP connection on the same cores, which a real corporate proxy does on its own machine. A chained "
        "tunnel is relayed by the plain path (splice for bulk) unless something on the lab side watches it: "
        "`--record` keeps it on the general path's relay (asyncio, no splice), where the recorder reads each "
        "direction's first TLS bytes and then lets the rest go by on the relay's fast path (`Stage.finished`).",
    ]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chain", description=__doc__.splitlines()[0])
    p.add_argument("--tunnels", type=int, default=100_000)
    p.add_argument("--max-bytes", type=int, action="append", default=[],
                   help="size limits to record under (default: 16 MiB, so it rotates, and 64 MiB, the CLI's default)")  # fmt: skip
    p.add_argument("--bulk-mib", type=int, default=128)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--no-throughput", action="store_true")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="append the section to PATH (docs/performance.md)")
    args = p.parse_args(argv)
    procs.raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="bench-chain-") as tmp:
        work = Path(tmp)
        records = []
        for n, limit in enumerate(args.max_bytes or [16 * MIB, 64 * MIB]):
            (work / str(n)).mkdir()
            records.append(record_bench(work / str(n), args.tunnels, limit))
            print(json.dumps({"record": records[-1]}, indent=2))
        throughput = None if args.no_throughput else throughput_bench(work, args.bulk_mib * MIB, args.reps)
        if throughput:
            print(json.dumps({"throughput": throughput}, indent=2))
    text = markdown(records, throughput)
    print(text)
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as out:
            out.write(text)
    return 0 if all(r["under_limit"] and r["observe_under_5s"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
