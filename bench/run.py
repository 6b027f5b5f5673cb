"""`make bench` (`python -m bench.run`): every proxy measured side by side in one run, then the report.

Order of a run: start the target servers (own process) and every peer; for each repetition, each
measurement visits every peer in turn (the order rotates per repetition, so drift in the machine's
load spreads over all peers); idle-tunnel memory is measured once, on the first repetition, before
any bulk transfer has grown the proxies' pools. Then the throttle accuracy through the lab proxy,
then every proxy is stopped and `proxy-lab demo` is timed alone. Results: a rich table on stdout,
`bench/results.json`, and optionally the same tables in Markdown (`--markdown PATH`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import measure, peers, procs, report, wire
from bench.peers import Peer, PeerSkipped
from bench.report import Samples
from bench.servers import TargetPorts, TargetServers

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "performance.md"
MIB = 1 << 20


@dataclass(frozen=True)
class Settings:
    reps: int = 3
    seq_count: int = 2000
    seq_seconds: float = 5.0
    concurrency: int = 100
    conc_count: int = 10000
    conc_seconds: float = 5.0
    bulk_bytes: int = 256 * MIB  # per round; rounds repeat until bulk_min_seconds (at most bulk_max_rounds)
    bulk_min_seconds: float = 1.0
    bulk_max_rounds: int = 8
    idle_tunnels: int = 1000
    throttle_kbps: tuple[float, ...] = (384, 1000)
    throttle_warmup_s: float = 1.0
    throttle_window_s: float = 10.5  # the slope between arrivals spans a little less than the window
    demo_timeout_s: float = 300.0
    integrity: str = "compare"


FULL = Settings()
QUICK = Settings(
    reps=1, seq_count=500, seq_seconds=2.0, conc_count=1000, conc_seconds=2.0, bulk_bytes=64 * MIB,
    bulk_min_seconds=0.3, idle_tunnels=250, throttle_window_s=3.0,
)  # fmt: skip


def log(message: str) -> None:
    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass  # a closed pipe must not abort the run (or its cleanup)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes and shorter windows (for development)")
    p.add_argument("--reps", type=int, help="repetitions per figure (median reported; default 3, quick 1)")
    p.add_argument("--peers", default=",".join(peers.ALL_PEERS),
                   help=f"comma-separated subset of {','.join(peers.ALL_PEERS)} (default: all)")  # fmt: skip
    p.add_argument("--bulk-mib", type=int, help="MiB per bulk round (default 256, quick 64)")
    p.add_argument("--idle-tunnels", type=int, help="tunnels held open for the memory figure (default 1000, quick 250)")
    p.add_argument("--integrity", choices=wire.INTEGRITY_MODES, default="compare",
                   help="how the sink checks bulk data: byte-exact comparison with the known stream (default, "
                        "cheap enough not to cap the fastest peers) or SHA-256 (~1.5 GB/s on one core)")  # fmt: skip
    p.add_argument("--no-throttle", action="store_true", help="skip the throttle-accuracy runs")
    p.add_argument("--no-demo", action="store_true", help="skip timing `proxy-lab demo`")
    p.add_argument("--output", type=Path, default=REPO / "bench" / "results.json", help="results JSON path")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the tables in Markdown here")
    p.add_argument("--update-docs", action="store_true",
                   help=f"replace the results section of {DOCS.relative_to(REPO)} with this run's tables")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="exit 1 unless every speed target passes")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: print (and --markdown / --update-docs) the results already in --output")  # fmt: skip
    args = p.parse_args(argv)
    names = [n.strip() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in peers.ALL_PEERS]
    if unknown:
        p.error(f"--peers: unknown {', '.join(unknown)}; expected names from {', '.join(peers.ALL_PEERS)}")
    args.peer_names = [n for n in peers.ALL_PEERS if n in names]
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    s = QUICK if args.quick else FULL
    if args.reps:
        s = replace(s, reps=max(1, args.reps))
    if args.bulk_mib:
        s = replace(s, bulk_bytes=max(1, args.bulk_mib) * MIB)
    if args.idle_tunnels:
        s = replace(s, idle_tunnels=max(1, args.idle_tunnels))
    return replace(s, integrity=args.integrity)


class Bench:
    """One run: the peers, their samples, and the order of measurements."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.s = settings
        self.workdir = workdir
        self.peers: list[Peer] = []
        self.samples: dict[str, dict[str, Samples]] = {}
        self.peer_info: dict[str, dict[str, Any]] = {}

    def sample(self, peer: str, key: str) -> Samples:
        return self.samples.setdefault(peer, {}).setdefault(key, Samples())

    def start_peers(self, names: list[str], ports: TargetPorts) -> None:
        for name in names:
            peer = peers.make_peer(name)
            info = {"kind": peer.kind, "version": "", "settings": peer.settings}
            self.peer_info[name] = info
            try:
                info["version"] = peer.version() if not peer.missing() else ""
                peer.start(self.workdir, ports)
            except PeerSkipped as exc:
                info.update(status="skipped", note=str(exc))
                log(f"skip {name}: {exc}")
                continue
            info.update(status="measured", note="")
            self.peers.append(peer)
            log(f"started {name} ({info['version'] or 'version unknown'})" + (f" pid {peer.pid}" if peer.pid else ""))

    def stop_peers(self) -> None:
        for peer in self.peers:
            peer.stop()

    def _alive(self, peer: Peer, key: str) -> bool:
        if peer.kind == "direct" or peer.pid is not None:
            return True
        self.sample(peer.name, key).add(None, False, f"{peer.name} exited: {peer.tail()[-300:]}")
        return False

    def run(self) -> None:
        for rep in range(self.s.reps):
            shift = rep % max(1, len(self.peers))
            order = self.peers[shift:] + self.peers[:shift]
            tag = f"[rep {rep + 1}/{self.s.reps}]"
            if rep == 0:
                for peer in order:
                    if peer.kind != "direct" and self._alive(peer, "idle_kib_per_tunnel"):
                        self.idle_memory(peer, tag)
            phases: list[tuple[str, Callable[[Peer, str], None]]] = [
                ("setup_seq_per_s", self.setups_seq), ("setup_conc_per_s", self.setups_conc),
                ("bulk1_mb_s", lambda p, t: self.bulk(p, t, 1)), ("bulk4_mb_s", lambda p, t: self.bulk(p, t, 4)),
            ]  # fmt: skip
            for key, phase in phases:
                for peer in order:
                    if self._alive(peer, key):
                        phase(peer, tag)
                        time.sleep(0.2)

    def setups_seq(self, peer: Peer, tag: str) -> None:
        r = measure.setups_sequential(peer.route("echo"), self.s.seq_count, self.s.seq_seconds)
        self._record_setups(peer.name, "seq", r)
        log(f"{tag} sequential setups  {peer.name:<10} {r.rate_per_s:8.0f}/s  p50 {r.p50_ms:.2f} ms  "
            f"p99 {r.p99_ms:.2f} ms  ({r.completed} ok, {r.errors} failed)")  # fmt: skip

    def setups_conc(self, peer: Peer, tag: str) -> None:
        r = measure.setups_concurrent(peer.route("echo"), self.s.concurrency, self.s.conc_count, self.s.conc_seconds)
        self._record_setups(peer.name, "conc", r)
        log(f"{tag} concurrent setups  {peer.name:<10} {r.rate_per_s:8.0f}/s  p50 {r.p50_ms:.1f} ms  "
            f"p99 {r.p99_ms:.1f} ms  ({r.completed} ok, {r.errors} failed)")  # fmt: skip

    def _record_setups(self, peer: str, kind: str, r: measure.SetupResult) -> None:
        note = f"{r.errors} of {r.completed + r.errors} setups failed, first: {r.first_error}" if r.errors else ""
        self.sample(peer, f"setup_{kind}_per_s").add(r.rate_per_s if r.completed else None, r.valid, note)
        self.sample(peer, f"setup_{kind}_p50_ms").add(r.p50_ms, r.valid)
        self.sample(peer, f"setup_{kind}_p99_ms").add(r.p99_ms, r.valid)

    def bulk(self, peer: Peer, tag: str, tunnels: int) -> None:
        r = measure.bulk(peer.route("sink"), tunnels, self.s.bulk_bytes, self.s.integrity, peer.pid,
                         min_seconds=self.s.bulk_min_seconds, max_rounds=self.s.bulk_max_rounds)  # fmt: skip
        key = f"bulk{tunnels}_mb_s"
        self.sample(peer.name, key).add(r.mb_per_s if r.total_bytes else None, r.valid,
                                        f"integrity or transfer failure: {r.detail}" if not r.valid else "")  # fmt: skip
        if r.cpu_s is not None and r.total_bytes:
            self.sample(peer.name, "cpu_s_per_gib").add(r.cpu_s / (r.total_bytes / measure.GIB), r.valid)
        cpu = f"  proxy CPU {r.cpu_s:.2f} s" if r.cpu_s is not None else ""
        check = "integrity ok" if r.valid else f"INVALID: {r.detail[:200]}"
        log(f"{tag} bulk x{tunnels}          {peer.name:<10} {r.mb_per_s:8.0f} MB/s  "
            f"{r.total_bytes / MIB:.0f} MiB in {r.elapsed_s:.2f} s ({r.rounds} round(s)){cpu}  {check}")  # fmt: skip

    def idle_memory(self, peer: Peer, tag: str) -> None:
        assert peer.pid is not None
        r = measure.idle_memory(peer.route("echo"), peer.pid, self.s.idle_tunnels)
        note = f"{r.tunnels} of {r.requested} tunnels opened; {r.detail}" if not r.valid else r.detail
        self.sample(peer.name, "idle_kib_per_tunnel").add(r.kib_per_tunnel, r.valid, note)
        log(f"{tag} idle memory        {peer.name:<10} {r.kib_per_tunnel:8.1f} KiB/tunnel over {r.tunnels} tunnels "
            f"(RSS {r.rss_before_kib / 1024:.1f} -> {r.rss_after_kib / 1024:.1f} MiB)")  # fmt: skip

    def figures(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {
            peer: {spec.key: self.samples[peer][spec.key].as_dict(spec) for spec in report.FIGURES
                   if spec.key in self.samples.get(peer, {})}
            for peer in self.samples
        }  # fmt: skip


def throttle_available() -> tuple[bool, str]:
    """Whether `proxy-lab faults` lists `throttle`, with the reason when not."""
    command = [*peers.Lab().command(), "faults"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=30, cwd=REPO, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"`proxy-lab faults` could not run: {exc}"
    names = {line.split()[0] for line in done.stdout.decode(errors="replace").splitlines() if line[:1].isalpha()}
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return False, f"`proxy-lab faults` failed (exit {done.returncode}): {tail[0]}"
    if "throttle" not in names:
        return False, f"`proxy-lab faults` does not list throttle yet (it lists: {', '.join(sorted(names)) or 'nothing'})"
    return True, ""


def run_throttle(s: Settings, workdir: Path, ports: TargetPorts) -> dict[str, Any]:
    ok, why = throttle_available()
    out: dict[str, Any] = {"runs": [], "note": why, "long_enough": s.throttle_window_s >= 10.0,
                           "warmup_s": s.throttle_warmup_s, "window_s": s.throttle_window_s}  # fmt: skip
    if not ok:
        log(f"skip throttle accuracy: {why}")
        return out
    for rate in s.throttle_kbps:
        lab = peers.Lab(faults=[f"throttle:rate_kbps={rate:g}"], name=f"lab-throttle-{rate:g}")
        try:
            lab.start(workdir, ports)
        except PeerSkipped as exc:
            out["note"] = f"{out['note']}; {exc}".strip("; ")
            log(f"skip throttle {rate:g}: {exc}")
            continue
        try:
            for fn in (measure.goodput_download, measure.goodput_upload):
                target = "source" if fn is measure.goodput_download else "sink"
                r = fn(lab.route(target), rate, s.throttle_warmup_s, s.throttle_window_s)
                out["runs"].append(asdict(r))
                log(f"throttle {rate:g} kbit/s {r.direction:<8} measured {r.measured_kbps:8.1f} kbit/s "
                    f"({r.error_pct:+.2f}%) over {r.window_s:.2f} s {r.detail}")  # fmt: skip
        finally:
            lab.stop()
    return out


def run_demo(s: Settings, workdir: Path) -> dict[str, Any]:
    command = [*peers.Lab().command(), "demo"]
    log(f"timing `{' '.join(command)}` (timeout {s.demo_timeout_s:.0f} s)")
    r = measure.demo_wall_time(command, REPO, workdir, s.demo_timeout_s)
    if r.seconds is not None:
        log(f"demo: {r.seconds:.1f} s, exit code {r.exit_code}")
    else:
        log(f"demo skipped: {r.skipped}")
    return asdict(r)


def mark_unstarted(bench: Bench) -> None:
    for info in bench.peer_info.values():
        if info.get("status") is None:
            info.update(status="skipped", note="not started (run interrupted)")


def publish(results: dict[str, Any], args: argparse.Namespace, *, write_json: bool) -> int:
    """Write the files (first: a closed stdout must not lose the run), print the tables, exit code."""
    written = []
    if write_json:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        report.write_json(results, args.output)
        written.append(args.output)
    if args.markdown:
        args.markdown.write_text(report.render_markdown(results), encoding="utf-8")
        written.append(args.markdown)
    if args.update_docs:
        report.update_docs(DOCS, report.render_markdown(results))
        written.append(DOCS)
    report.print_report(results)
    if written:
        log("wrote " + ", ".join(str(p) for p in written))
    if args.strict and any(t["status"] != "pass" for t in results["targets"]):
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        try:
            results = json.loads(args.output.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log(f"bench: cannot read {args.output}: {exc}")
            return 2
        results["ratios"] = report.ratios(results["figures"])
        results["targets"] = report.evaluate_targets(results["figures"], results["throttle"])
        return publish(results, args, write_json=False)
    settings = settings_from(args)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    nofile = procs.raise_nofile_limit()
    started_at = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="proxy-lab-bench-"))
    workdir.chmod(0o755)  # peers that drop root (Squid, tinyproxy) must reach their own subdirectory
    bench = Bench(settings, workdir)
    machine = report.machine_info()
    machine["nofile_limit"] = nofile
    throttle: dict[str, Any] = {"runs": [], "note": "not run (--no-throttle)"}
    demo: dict[str, Any] = {"seconds": None, "exit_code": None, "skipped": "not run (--no-demo)"}
    log(f"bench: {'quick' if args.quick else 'full'} run of {', '.join(args.peer_names)}; work files in {workdir}")
    try:
        with TargetServers(workdir) as ports:
            log(f"target servers on 127.0.0.1: echo {ports.echo}, sink {ports.sink}, source {ports.source}")
            try:
                bench.start_peers(args.peer_names, ports)
                bench.run()
            finally:
                bench.stop_peers()
            if not args.no_throttle:
                throttle = run_throttle(settings, workdir, ports)
        machine["loadavg_at_end"] = list(os.getloadavg())  # before the demo, which loads the machine itself
        if not args.no_demo:
            demo = run_demo(settings, workdir)
    except KeyboardInterrupt:
        log("bench: interrupted; every process it started has been stopped")
        return 130
    finally:
        bench.stop_peers()
        shutil.rmtree(workdir, ignore_errors=True)
    mark_unstarted(bench)
    figures = bench.figures()
    results: dict[str, Any] = {
        "schema": 1,
        "started": started_at,
        "duration_s": round(time.monotonic() - t0, 1),
        "mode": "quick" if args.quick else "full",
        "settings": {**asdict(settings), "bulk_mib": settings.bulk_bytes / MIB},
        "machine": machine,
        "commit": procs.run_for_output(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        "order": [n for n in args.peer_names if n in bench.peer_info],
        "peers": bench.peer_info,
        "figures": figures,
        "ratios": report.ratios(figures),
        "throttle": throttle,
        "demo": demo,
    }
    results["targets"] = report.evaluate_targets(figures, throttle)
    return publish(results, args, write_json=True)


if __name__ == "__main__":
    sys.exit(main())
