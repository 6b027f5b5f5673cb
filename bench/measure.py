"""Each figure the bench measures, for one route at a time; every loop is bounded in count and in time.

- `setups_sequential`: open TCP, CONNECT, read the 200, one byte through the echo server and back,
  close; one after the other. Rate = completed / elapsed; latency = connect() to the echo's return.
- `setups_concurrent`: the same with `concurrency` setups in flight at every moment.
- `bulk`: `total_bytes` split over `tunnels` tunnels to the sink, sent at once; the sink checks the
  byte count and every byte (or a SHA-256), and the clock stops when the last verdict is back.
- `idle_memory`: RSS of the proxy's process tree before and after opening `count` tunnels that
  each carried one echo byte, divided by `count`.
- `goodput_download` / `goodput_upload`: the rate seen by the receiver inside a time window that
  starts after a warm-up (the throttle-accuracy figure).
- `demo_wall_time`: `proxy-lab demo` from start to exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import client, procs, wire
from bench.client import Route, TunnelError

GIB = 1 << 30
MAX_ERRORS = client.MAX_ERRORS


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass
class SetupResult:
    rate_per_s: float
    p50_ms: float
    p99_ms: float
    completed: int
    errors: int
    elapsed_s: float
    first_error: str = ""

    @classmethod
    def from_latencies(cls, latencies: list[float], errors: int, elapsed: float, first_error: str) -> SetupResult:
        ordered = sorted(latencies)
        return cls(
            rate_per_s=len(ordered) / elapsed if elapsed > 0 else 0.0,
            p50_ms=_quantile(ordered, 0.50) * 1000, p99_ms=_quantile(ordered, 0.99) * 1000,
            completed=len(ordered), errors=errors, elapsed_s=elapsed, first_error=first_error,
        )  # fmt: skip

    @property
    def valid(self) -> bool:
        return self.completed > 0 and self.errors <= max(1, self.completed // 100)


def setups_sequential(route: Route, max_count: int, max_seconds: float) -> SetupResult:
    latencies: list[float] = []
    errors, first_error = 0, ""
    started = time.perf_counter()
    deadline = started + max_seconds
    while len(latencies) + errors < max_count and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            sock = client.open_tunnel(route, timeout_s=5.0)
            try:
                client.echo_once(sock)
            finally:
                sock.close()
        except (OSError, TunnelError) as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            if errors >= MAX_ERRORS:
                break
            continue
        latencies.append(time.perf_counter() - t0)
    return SetupResult.from_latencies(latencies, errors, time.perf_counter() - started, first_error)


def setups_concurrent(route: Route, concurrency: int, max_count: int, max_seconds: float) -> SetupResult:
    batch = client.setups_in_flight(route, concurrency, max_count, max_seconds, timeout_s=5.0)
    time.sleep(0.05)  # let the last closes reach the proxy before the next measurement
    return SetupResult.from_latencies(batch.latencies, len(batch.errors), batch.elapsed_s,
                                      batch.errors[0] if batch.errors else "")  # fmt: skip


@dataclass
class BulkResult:
    mb_per_s: float  # 10**6 bytes per second, payload only
    total_bytes: int
    tunnels: int
    elapsed_s: float
    valid: bool
    detail: str = ""
    cpu_s: float | None = None  # CPU seconds used by the proxy's process tree during the transfer
    rounds: int = 1


def bulk(route: Route, tunnels: int, total_bytes: int, integrity: str, proxy_pid: int | None, *,
         min_seconds: float = 0.0, max_rounds: int = 1) -> BulkResult:  # fmt: skip
    """Rounds of `bulk_round` until `min_seconds` of transfer or `max_rounds`; their sum as one figure.

    A fast peer moves 256 MiB in a tenth of a second, too short to be steady on a busy machine,
    so it gets more rounds; a slow peer's first round already lasts long enough.
    """
    rounds: list[BulkResult] = []
    while len(rounds) < max(1, max_rounds):
        rounds.append(bulk_round(route, tunnels, total_bytes, integrity, proxy_pid))
        if not rounds[-1].valid or sum(r.elapsed_s for r in rounds) >= min_seconds:
            break
    moved = sum(r.total_bytes for r in rounds)
    elapsed = sum(r.elapsed_s for r in rounds)
    cpus = [r.cpu_s for r in rounds]
    return BulkResult(
        mb_per_s=moved / elapsed / 1e6 if elapsed > 0 else 0.0, total_bytes=moved, tunnels=tunnels,
        elapsed_s=elapsed, valid=all(r.valid for r in rounds), detail="; ".join(r.detail for r in rounds if r.detail),
        cpu_s=None if None in cpus else sum(c for c in cpus if c is not None), rounds=len(rounds),
    )  # fmt: skip


def bulk_round(route: Route, tunnels: int, total_bytes: int, integrity: str, proxy_pid: int | None,
               timeout_s: float = 30.0) -> BulkResult:  # fmt: skip
    """`total_bytes` through `tunnels` tunnels at once to the sink, integrity checked at the far end."""
    per_tunnel = total_bytes // tunnels
    expected_digest = wire.pattern_sha256(per_tunnel) if integrity == "sha256" else "compare"
    try:
        socks = [client.open_tunnel(route, timeout_s=timeout_s) for _ in range(tunnels)]
    except (OSError, TunnelError) as exc:
        return BulkResult(0.0, 0, tunnels, 0.0, False, f"could not open {tunnels} tunnels: {exc}")
    gate = threading.Barrier(tunnels + 1, timeout=30.0)
    ends: list[float] = [0.0] * tunnels
    verdicts: list[str] = [""] * tunnels
    whole, rest = divmod(per_tunnel, wire.PATTERN_SIZE)
    pattern = memoryview(wire.PATTERN)

    def send(i: int, sock: socket.socket) -> None:
        try:
            gate.wait()
            sock.sendall(wire.sink_header(per_tunnel, integrity))
            for _ in range(whole):
                sock.sendall(pattern)
            if rest:
                sock.sendall(pattern[:rest])
            verdicts[i] = client.read_line(sock).decode(errors="replace")
        except (OSError, TunnelError, threading.BrokenBarrierError) as exc:
            verdicts[i] = f"ERROR {type(exc).__name__}: {exc}"
        ends[i] = time.perf_counter()

    threads = [threading.Thread(target=send, args=(i, s), name=f"bulk-{i}", daemon=True) for i, s in enumerate(socks)]
    try:
        for thread in threads:
            thread.start()
        cpu_before = procs.tree_cpu_seconds(proxy_pid) if proxy_pid else None
        gate.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join(timeout_s + 5.0)
        cpu_after = procs.tree_cpu_seconds(proxy_pid) if proxy_pid else None
    finally:
        for sock in socks:
            sock.close()
    elapsed = max(ends) - started if all(ends) else timeout_s
    problems = [
        f"tunnel {i}: {v or 'no verdict'}" for i, v in enumerate(verdicts) if v != f"OK {per_tunnel} {expected_digest}"
    ]
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    moved = per_tunnel * tunnels
    return BulkResult(
        mb_per_s=moved / elapsed / 1e6 if elapsed > 0 else 0.0, total_bytes=moved, tunnels=tunnels,
        elapsed_s=elapsed, valid=not problems, detail="; ".join(problems)[:500], cpu_s=cpu,
    )  # fmt: skip


@dataclass
class MemoryResult:
    kib_per_tunnel: float
    tunnels: int
    requested: int
    rss_before_kib: float
    rss_after_kib: float
    valid: bool
    detail: str = ""


def _open_idle(route: Route, count: int, max_seconds: float) -> tuple[list[socket.socket], str]:
    batch = client.setups_in_flight(route, 100, count, max_seconds, keep=True, timeout_s=10.0)
    detail = f"{len(batch.errors)} failed, first: {batch.errors[0]}" if batch.errors else ""
    return batch.kept, detail


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def idle_memory(route: Route, proxy_pid: int, count: int, max_seconds: float = 60.0) -> MemoryResult:
    # warm up the code paths (imports, pools) so the baseline is not a cold process
    warm, _ = _open_idle(route, 20, 10.0)
    _close_all(warm)
    time.sleep(0.5)
    before = procs.tree_rss_bytes(proxy_pid)
    tunnels, detail = _open_idle(route, count, max_seconds)
    try:
        time.sleep(0.5)
        after = procs.tree_rss_bytes(proxy_pid)
    finally:
        _close_all(tunnels)
        time.sleep(0.2)
    opened = len(tunnels)
    return MemoryResult(
        kib_per_tunnel=(after - before) / 1024 / opened if opened else float("nan"), tunnels=opened,
        requested=count, rss_before_kib=before / 1024, rss_after_kib=after / 1024,
        valid=opened >= count * 0.99, detail=detail,
    )  # fmt: skip


@dataclass
class GoodputResult:
    direction: str  # "download" (proxy to client) or "upload" (client to proxy)
    setting_kbps: float
    measured_kbps: float
    error_pct: float
    window_s: float
    bytes_in_window: int
    valid: bool
    detail: str = ""


def _goodput(direction: str, setting: float, nbytes: int, seconds: float, detail: str = "") -> GoodputResult:
    if seconds <= 0 or nbytes <= 0:
        return GoodputResult(direction, setting, 0.0, float("nan"), seconds, nbytes, False, detail or "no data in the window")
    kbps = nbytes * 8 / seconds / 1000
    return GoodputResult(direction, setting, kbps, (kbps - setting) / setting * 100, seconds, nbytes, True, detail)


def goodput_download(route: Route, setting_kbps: float, warmup_s: float, window_s: float) -> GoodputResult:
    """Receiver-side rate of a stream from the source, from the first arrival after the warm-up to
    the last arrival inside the window (slope between two arrivals, so chunking does not bias it)."""
    # enough data to keep the stream busy past the window even if the throttle ran 4x fast
    nbytes = int(setting_kbps * 1000 / 8 * (warmup_s + window_s) * 4) + (1 << 20)
    try:
        sock = client.open_tunnel(route, timeout_s=10.0)
    except (OSError, TunnelError) as exc:
        return _goodput("download", setting_kbps, 0, 0.0, f"tunnel: {exc}")
    first: float | None = None
    start_mark: tuple[float, int] | None = None
    end_mark: tuple[float, int] | None = None
    received = 0
    try:
        sock.sendall(wire.source_header(nbytes))
        sock.settimeout(5.0)
        hard_stop = time.monotonic() + warmup_s + window_s + 30.0
        while time.monotonic() < hard_stop:
            data = sock.recv(1 << 20)
            now = time.monotonic()
            if not data:
                break
            received += len(data)
            if first is None:
                first = now
                continue
            if now > first + warmup_s + window_s:
                break
            if now >= first + warmup_s:
                if start_mark is None:
                    start_mark = (now, received)
                else:
                    end_mark = (now, received)
    except OSError as exc:
        return _goodput("download", setting_kbps, 0, 0.0, f"{type(exc).__name__}: {exc}")
    finally:
        sock.close()
    if start_mark is None or end_mark is None:
        return _goodput("download", setting_kbps, 0, 0.0,
                        f"the stream stopped ({received} bytes) before two arrivals fell inside the window")  # fmt: skip
    return _goodput("download", setting_kbps, end_mark[1] - start_mark[1], end_mark[0] - start_mark[0])


def goodput_upload(route: Route, setting_kbps: float, warmup_s: float, window_s: float) -> GoodputResult:
    """The same measured by the sink (RATE mode) while the client sends as fast as it may."""
    try:
        sock = client.open_tunnel(route, timeout_s=10.0)
    except (OSError, TunnelError) as exc:
        return _goodput("upload", setting_kbps, 0, 0.0, f"tunnel: {exc}")
    stop = threading.Event()
    chunk = memoryview(wire.PATTERN)[: 64 * 1024]

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(wire.rate_header(warmup_s, window_s))
            deadline = time.monotonic() + warmup_s + window_s + 30.0
            # the sink only measures arrival times, so the content does not matter here
            while not stop.is_set() and time.monotonic() < deadline:
                sock.sendall(chunk)

    sender = threading.Thread(target=send, name="upload", daemon=True)
    sender.start()
    try:
        sock.settimeout(warmup_s + window_s + 30.0)
        words = client.read_line(sock).decode(errors="replace").split()
    except (OSError, TunnelError) as exc:
        return _goodput("upload", setting_kbps, 0, 0.0, f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(10.0)
        sock.close()
    if len(words) != 3 or words[0] != "RATE":
        return _goodput("upload", setting_kbps, 0, 0.0, f"sink answered {' '.join(words)!r}")
    return _goodput("upload", setting_kbps, int(words[1]), float(words[2]))


@dataclass
class DemoResult:
    seconds: float | None
    exit_code: int | None
    skipped: str = ""
    output_tail: list[str] = field(default_factory=list)


def demo_wall_time(command: list[str], cwd: Path, workdir: Path, timeout_s: float) -> DemoResult:
    """Wall time of `proxy-lab demo`; exit code 0 (all met) or 1 (some not met) both count as a run."""
    proc = procs.Managed("demo", command, workdir, cwd=cwd, env=dict(os.environ, NO_COLOR="1"))
    started = time.perf_counter()
    try:
        proc.start()
        assert proc.proc is not None
        code: int | None = proc.proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        code = None
    except OSError as exc:
        return DemoResult(None, None, f"could not start {' '.join(command)}: {exc}")
    finally:
        proc.stop(grace_s=3.0)
    seconds = time.perf_counter() - started
    tail = proc.tail(8).splitlines()
    if code is None:
        return DemoResult(None, None, f"did not finish within {timeout_s:.0f} s", tail)
    crashed = "Traceback (most recent call last)" in proc.tail(400)
    if code not in (0, 1) or crashed:
        # exit 1 is also what an uncaught exception gives: that is a crash, not "some expectation not met"
        last = tail[-1] if tail else ""
        return DemoResult(None, code, f"exited with code {code}" + (f": {last}" if last else ""), tail)
    return DemoResult(seconds, code, "", tail)


def median_or_none(values: list[float]) -> float | None:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else None


def as_dict(result: Any) -> dict[str, Any]:
    return asdict(result)
