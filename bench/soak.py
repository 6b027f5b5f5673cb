"""`make soak` (`python -m bench.soak`): 10,000 tunnels through `proxy-lab proxy`, 200 at a time, with
client aborts and upstream resets; the proxy must keep serving and give back its descriptors and memory.

The proxy runs as its own process (`python -m proxy_lab.cli proxy --listen 127.0.0.1:PORT`), so its
open descriptors (/proc/PID/fd) and resident memory (VmRSS in /proc/PID/status) are its own. Every
tunnel targets an IP literal (`CONNECT 127.0.0.1:PORT`): the proxy's system resolver answers that
without DNS. Two upstreams run in this process on loopback: an echo server, and one that reads the
first bytes, answers a few, then resets the connection (SO_LINGER 0).

Each tunnel is one of (shares in `MIX`):
- `echo`: send 1-32 KiB, read it all back intact, close. Must succeed.
- `client_close`: send, then close without reading the echo (FIN with unread data, often a reset).
- `client_reset`: send, then reset (SO_LINGER 0).
- `reset_before_answer`: send the CONNECT head and reset before the proxy answers.
- `upstream_reset`: the upstream resets mid-tunnel; the proxy must pass the close on (no hang).

Order: start the proxy; warm up in waves of `--warmup` tunnels (same mix and concurrency) until
its RSS is steady (three waves in a row each growing less than `--steady-pct`, at most
`--warmup-waves`): the allocator's high-water mark rises in steps over the first ~10,000 tunnels of
bursts of 200 and then stays flat (60,000 tunnels measured, see docs/reliability.md), while a leak
would never be called steady. Then settle; measure the baseline (descriptors, RSS); run `--tunnels`;
settle (up to `--settle` seconds for descriptors to come back); measure again; one health CONNECT;
SIGTERM. Criteria, each printed with its figures: every CONNECT answered 200, every `echo` tunnel
intact, every upstream reset passed on to the client, the health CONNECT
answered 200, descriptors back to the baseline, RSS steady before the baseline and within
`--rss-tolerance` (10%) of it after, exit code 0 on SIGTERM. Exit 0 when all hold, 1 otherwise, 2
when the proxy cannot start. Every wait is bounded; the whole run by `--max-seconds`.

    python -m bench.soak                          # 10,000 tunnels, 200 at a time
    python -m bench.soak --tunnels 2000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
STEP_TIMEOUT_S = 20.0  # any single wait of a tunnel
STEADY_WAVES = 3  # warm-up waves in a row whose RSS growth is below --steady-pct
MIX = {"echo": 55, "client_close": 12, "client_reset": 12, "reset_before_answer": 6, "upstream_reset": 15}
_LINGER_RESET = struct.pack("ii", 1, 0)


# -- the proxy process and /proc ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def memory_breakdown(pid: int) -> dict[str, int]:
    """Rss, Anonymous, Rss of file mappings (KiB) from /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name.strip()] = int(parts[0])
    rss, anon = fields.get("Rss", 0), fields.get("Anonymous", 0)
    return {"rss": rss, "anonymous": anon, "file": rss - anon}


def _raise_nofile(want: int = 16384) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class ProxyProcess:
    """`proxy-lab proxy` on 127.0.0.1:port in its own session, its output in `log`."""

    def __init__(self, port: int, workdir: Path, max_connections: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.log = workdir / "proxy.log"
        self.argv = [sys.executable, "-m", "proxy_lab.cli", "proxy", "--listen", f"{LOOPBACK}:{port}", "--workers", "1",
                     "--max-connections", str(max_connections)]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parent.parent, env=self.env, start_new_session=True, preexec_fn=_raise_nofile,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited with {self.proc.returncode}: {self.tail()}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"proxy did not listen on {LOOPBACK}:{self.port} within {timeout_s:g} s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                return None
        return self.proc.returncode


# -- upstreams --------------------------------------------------------------------------------------
def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    writer.transport.abort()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await asyncio.wait_for(reader.read(65536), STEP_TIMEOUT_S):
            writer.write(data)
            await asyncio.wait_for(writer.drain(), STEP_TIMEOUT_S)
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()


async def _resetter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the first bytes, answer a few, then reset the connection."""
    try:
        data = await asyncio.wait_for(reader.read(4096), STEP_TIMEOUT_S)
        if data:
            writer.write(data[:16])
            await asyncio.wait_for(writer.drain(), STEP_TIMEOUT_S)
            await asyncio.sleep(0.001)
    except (OSError, TimeoutError):
        pass
    finally:
        _reset(writer)


# -- the tunnels ------------------------------------------------------------------------------------
@dataclass
class Tally:
    kinds: Counter[str] = field(default_factory=Counter)
    results: Counter[str] = field(default_factory=Counter)  # "kind:result"
    failures: list[str] = field(default_factory=list)  # echo tunnels broken, resets not passed on
    bytes_echoed: int = 0

    def fail(self, what: str) -> None:
        self.results[what.split(":", 1)[0] + ":FAILED"] += 1
        if len(self.failures) < 20:
            self.failures.append(what)


async def _open_tunnel(proxy_port: int, target_port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, proxy_port), STEP_TIMEOUT_S)
    writer.write(f"CONNECT {LOOPBACK}:{target_port} HTTP/1.1\r\nHost: {LOOPBACK}:{target_port}\r\n\r\n".encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT_S)
    except BaseException:
        writer.transport.abort()
        raise
    if not head.startswith(b"HTTP/1.1 200"):
        writer.transport.abort()
        raise ConnectionError(f"CONNECT answered {head.split(b'\r\n', 1)[0]!r}")
    return reader, writer


async def one_tunnel(kind: str, rng: random.Random, ports: dict[str, int], tally: Tally) -> None:
    proxy = ports["proxy"]
    payload = rng.randbytes(rng.randint(1, 32 * 1024))
    tally.kinds[kind] += 1
    if kind == "reset_before_answer":
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, proxy), STEP_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            tally.fail(f"{kind}: connect to proxy: {exc!r}")
            return
        writer.write(f"CONNECT {LOOPBACK}:{ports['echo']} HTTP/1.1\r\n\r\n".encode())
        if rng.random() < 0.5:
            await asyncio.sleep(0)
        _reset(writer)
        tally.results[f"{kind}:done"] += 1
        return
    target = ports["resetter"] if kind == "upstream_reset" else ports["echo"]
    try:
        reader, writer = await _open_tunnel(proxy, target)
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        tally.fail(f"{kind}: CONNECT failed: {exc!r}")
        return
    try:
        if kind == "echo":
            writer.write(payload)
            got = await asyncio.wait_for(reader.readexactly(len(payload)), STEP_TIMEOUT_S)
            if got != payload:
                tally.fail(f"{kind}: echo differs ({len(got)} of {len(payload)} bytes)")
            else:
                tally.bytes_echoed += len(got)
                tally.results[f"{kind}:intact"] += 1
            writer.close()
        elif kind == "client_close":
            writer.write(payload)
            if rng.random() < 0.5:
                await asyncio.wait_for(reader.read(rng.randint(1, 4096)), STEP_TIMEOUT_S)
            writer.close()
            tally.results[f"{kind}:done"] += 1
        elif kind == "client_reset":
            writer.write(payload[: rng.randint(1, len(payload))])
            if rng.random() < 0.5:
                await asyncio.sleep(rng.random() * 0.005)
            _reset(writer)
            tally.results[f"{kind}:done"] += 1
        elif kind == "upstream_reset":
            writer.write(payload)
            try:
                while await asyncio.wait_for(reader.read(65536), STEP_TIMEOUT_S):
                    pass
                tally.results[f"{kind}:closed"] += 1
            except ConnectionError:
                tally.results[f"{kind}:reset"] += 1
            except TimeoutError:
                tally.fail(f"{kind}: the proxy did not pass the upstream's reset on within {STEP_TIMEOUT_S:g} s")
            writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        if kind == "echo":
            tally.fail(f"{kind}: {exc!r}")
        else:
            tally.results[f"{kind}:{type(exc).__name__}"] += 1
        writer.transport.abort()


async def run_tunnels(count: int, concurrency: int, ports: dict[str, int], rng: random.Random,
                      tally: Tally, deadline: float, on_tick: Any = None) -> float:  # fmt: skip
    """`count` tunnels, at most `concurrency` at once; returns the seconds taken."""
    kinds = [k for k, share in MIX.items() for _ in range(share)]
    plan = [rng.choice(kinds) for _ in range(count)]
    seeds = [rng.getrandbits(32) for _ in range(count)]
    next_index = 0
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            await one_tunnel(plan[i], random.Random(seeds[i]), ports, tally)
            if on_tick is not None and i % 500 == 0:
                on_tick(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return loop.time() - started


async def health_check(ports: dict[str, int]) -> str | None:
    """None when a fresh tunnel carries bytes both ways; else what went wrong."""
    try:
        reader, writer = await _open_tunnel(ports["proxy"], ports["echo"])
        writer.write(b"health")
        got = await asyncio.wait_for(reader.readexactly(6), STEP_TIMEOUT_S)
        writer.close()
        return None if got == b"health" else f"echo was {got!r}"
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return repr(exc)


async def settle(pid: int, target_fds: int | None, seconds: float) -> tuple[int, float]:
    """Wait until the proxy's descriptors reach `target_fds` (or stop changing for 1 s when None);
    returns (descriptors, seconds waited)."""
    started = time.monotonic()
    last, stable_since = fd_count(pid), time.monotonic()
    while time.monotonic() - started < seconds:
        await asyncio.sleep(0.1)
        now = fd_count(pid)
        if target_fds is not None and now <= target_fds:
            return now, time.monotonic() - started
        if now != last:
            last, stable_since = now, time.monotonic()
        elif target_fds is None and time.monotonic() - stable_since >= 1.0:
            break
    return fd_count(pid), time.monotonic() - started


async def rss_sample(pid: int, n: int = 5) -> int:
    """Median VmRSS of `n` samples 0.1 s apart (KiB)."""
    values = []
    for _ in range(n):
        values.append(rss_kib(pid))
        await asyncio.sleep(0.1)
    return sorted(values)[n // 2]


@dataclass
class Figures:
    tunnels: int
    concurrency: int
    warmup: int
    warmup_tunnels: int = 0
    warmup_rss_kib: list[int] = field(default_factory=list)  # after each wave
    warmup_steady: bool = False
    seconds: float = 0.0
    tunnels_per_s: float = 0.0
    fds_baseline: int = 0
    fds_peak: int = 0
    fds_after: int = 0
    settle_s: float = 0.0
    rss_baseline_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    rss_change_pct: float = 0.0
    memory_baseline: dict[str, int] = field(default_factory=dict)  # smaps_rollup, KiB
    memory_after: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    results: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    health: str = ""
    exit_code: int | None = None
    criteria: dict[str, bool] = field(default_factory=dict)


async def soak(args: argparse.Namespace, proxy: ProxyProcess) -> Figures:
    figures = Figures(args.tunnels, args.concurrency, args.warmup)
    deadline = time.monotonic() + args.max_seconds
    echo = await asyncio.start_server(_echo, LOOPBACK, 0, backlog=1024)
    resetter = await asyncio.start_server(_resetter, LOOPBACK, 0, backlog=1024)
    ports = {"proxy": proxy.port, "echo": echo.sockets[0].getsockname()[1],
             "resetter": resetter.sockets[0].getsockname()[1]}  # fmt: skip
    rng = random.Random(args.seed)
    pid = proxy.pid
    peak = {"fds": 0, "rss": 0}
    stop_sampling = asyncio.Event()

    async def sampler() -> None:
        while not stop_sampling.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                peak["fds"] = max(peak["fds"], fd_count(pid))
                peak["rss"] = max(peak["rss"], rss_kib(pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_sampling.wait(), 0.25)

    try:
        # Warm up in waves until RSS is steady: the allocator's high-water mark (heap and arena
        # fragmentation after bursts of 200 tunnels) rises in steps for the first several thousand
        # tunnels, then stays flat; a leak would keep rising and never be called steady.
        steady_waves = 0
        for wave in range(args.warmup_waves):
            warm = Tally()
            await run_tunnels(args.warmup, args.concurrency, ports, rng, warm, deadline)
            figures.warmup_tunnels += args.warmup
            await settle(pid, None, 5.0)
            rss = await rss_sample(pid)
            previous = figures.warmup_rss_kib[-1] if figures.warmup_rss_kib else None
            figures.warmup_rss_kib.append(rss)
            growth = 100.0 * (rss - previous) / previous if previous else float("inf")
            log(f"warm-up wave {wave + 1}: {args.warmup} tunnels, RSS {rss / 1024:.1f} MiB"
                + (f" ({growth:+.1f}%)" if previous else "")
                + (f"; failures (not counted): {warm.failures[:2]}" if warm.failures else ""))  # fmt: skip
            steady_waves = steady_waves + 1 if growth < args.steady_pct else 0
            if steady_waves >= STEADY_WAVES:
                break
        figures.warmup_steady = steady_waves >= STEADY_WAVES
        fds, _ = await settle(pid, None, 10.0)
        figures.fds_baseline = fds
        figures.rss_baseline_kib = await rss_sample(pid)
        figures.memory_baseline = memory_breakdown(pid)
        log(f"baseline: {figures.fds_baseline} descriptors, RSS {figures.rss_baseline_kib / 1024:.1f} MiB")

        tally = Tally()
        sampling = asyncio.ensure_future(sampler())

        def tick(i: int) -> None:
            if i and i % 2000 == 0:
                log(f"  {i} tunnels started; proxy has {fd_count(pid)} descriptors, RSS {rss_kib(pid) / 1024:.1f} MiB")

        figures.seconds = await run_tunnels(args.tunnels, args.concurrency, ports, rng, tally, deadline, tick)
        stop_sampling.set()
        await sampling
        figures.tunnels_per_s = args.tunnels / max(figures.seconds, 1e-9)
        figures.fds_peak, figures.rss_peak_kib = peak["fds"], peak["rss"]
        figures.fds_after, figures.settle_s = await settle(pid, figures.fds_baseline, args.settle)
        figures.rss_after_kib = await rss_sample(pid)
        figures.memory_after = memory_breakdown(pid)
        figures.rss_change_pct = 100.0 * (figures.rss_after_kib - figures.rss_baseline_kib) / figures.rss_baseline_kib
        figures.kinds = dict(tally.kinds)
        figures.results = dict(sorted(tally.results.items()))
        figures.failures = tally.failures
        health = await health_check(ports)
        figures.health = "200, bytes echoed" if health is None else f"FAILED: {health}"
        done = sum(tally.kinds.values())
        figures.criteria = {
            f"all {args.tunnels} tunnels run within --max-seconds": done == args.tunnels,
            "every CONNECT answered 200, every echo intact, every upstream reset passed on":
                not any(k.endswith(":FAILED") for k in tally.results),
            "the proxy keeps serving (health CONNECT)": health is None and proxy.alive(),
            "descriptors back to the baseline": figures.fds_after <= figures.fds_baseline,
            "RSS steady before the baseline (warm-up)": figures.warmup_steady,
            f"RSS within {args.rss_tolerance:g}% of the baseline": figures.rss_change_pct <= args.rss_tolerance,
        }
    finally:
        stop_sampling.set()
        for server in (echo, resetter):
            server.close()
            server.close_clients()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)
    return figures


def log(message: str) -> None:
    print(message, flush=True)


def print_figures(f: Figures) -> None:
    mib = 1024
    print()
    print(f"tunnels            {f.tunnels} ({f.concurrency} at a time) in {f.seconds:.1f} s, {f.tunnels_per_s:.0f}/s")
    print(f"warm-up            {f.warmup_tunnels} tunnels in waves of {f.warmup}; RSS after each wave "
          f"{', '.join(f'{r / 1024:.1f}' for r in f.warmup_rss_kib)} MiB ({'steady' if f.warmup_steady else 'NOT steady'})")  # fmt: skip
    print(f"mix                {', '.join(f'{k} {v}' for k, v in sorted(f.kinds.items()))}")
    print(f"results            {', '.join(f'{k} {v}' for k, v in f.results.items())}")
    print(f"descriptors        baseline {f.fds_baseline}, peak {f.fds_peak}, after {f.fds_after} (settled in {f.settle_s:.1f} s)")
    print(f"RSS                baseline {f.rss_baseline_kib / mib:.1f} MiB, peak {f.rss_peak_kib / mib:.1f} MiB, "
          f"after {f.rss_after_kib / mib:.1f} MiB ({f.rss_change_pct:+.1f}%)")  # fmt: skip
    if f.memory_baseline and f.memory_after:
        b, a = f.memory_baseline, f.memory_after
        print(f"  of which          anonymous {b['anonymous'] / mib:.1f} -> {a['anonymous'] / mib:.1f} MiB, "
              f"file-backed {b['file'] / mib:.1f} -> {a['file'] / mib:.1f} MiB")  # fmt: skip
    print(f"health CONNECT     {f.health}")
    print(f"proxy exit code    {f.exit_code} (SIGTERM)")
    for failure in f.failures:
        print(f"  failure: {failure}")
    for name, ok in f.criteria.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tunnels", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=2000, help="tunnels per warm-up wave (default %(default)s)")
    parser.add_argument("--warmup-waves", type=int, default=15, help="most warm-up waves (default %(default)s)")
    parser.add_argument("--steady-pct", type=float, default=1.0,
                        help=f"RSS growth over a wave below which it counts as steady ({STEADY_WAVES} waves in a row)")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds allowed for descriptors to come back")
    parser.add_argument("--rss-tolerance", type=float, default=10.0, help="percent (default %(default)s)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound on the whole run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    parser.add_argument("--proxy-env", action="append", default=[], metavar="NAME=VALUE",
                        help="environment for the proxy process (e.g. MALLOC_ARENA_MAX=2); repeatable")
    args = parser.parse_args(argv)
    if args.tunnels < 1 or args.concurrency < 1 or args.warmup < 1 or args.warmup_waves < 1:
        parser.error("--tunnels, --concurrency, --warmup and --warmup-waves must be >= 1")
    env = {}
    for item in args.proxy_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--proxy-env {item!r}: expected NAME=VALUE")
        env[name] = value
    _raise_nofile()
    with tempfile.TemporaryDirectory(prefix="proxy-lab-soak-") as tmp:
        proxy = ProxyProcess(free_port(), Path(tmp), max_connections=4 * args.concurrency + 64, env=env)
        try:
            proxy.start()
        except RuntimeError as exc:
            print(f"soak: cannot start the proxy: {exc}", file=sys.stderr)
            return 2
        log(f"proxy pid {proxy.pid} on {LOOPBACK}:{proxy.port}; {len(os.listdir(f'/proc/{proxy.pid}/fd'))} descriptors at start")
        try:
            figures = asyncio.run(soak(args, proxy))
        finally:
            code = proxy.stop()
        figures.exit_code = code
        figures.criteria["the proxy exits 0 on SIGTERM"] = code == 0
        if not all(figures.criteria.values()):
            print(f"proxy log (last lines):\n{proxy.tail()}")
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n", encoding="utf-8")
    return 0 if all(figures.criteria.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
