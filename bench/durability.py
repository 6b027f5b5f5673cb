"""Durability of the transaction journal (`python -m bench.durability`): nothing lost, nothing duplicated.

The guide: "Transactional usage data is uploaded and then deleted when confirmed upon receipt by PB
Infrastructure". Two parts, both on loopback against the simulated cloud, through a lab proxy:

1. Resets and a restart. N devices with M journal records each upload through a LabProxy whose
   tunnels to the transaction host (cometservp1.pb.com) are reset at random (`reset_after` on a
   share of the tunnels, after a random number of bytes in either direction: some uploads never
   reach the cloud, some reach it and lose their receipt). Once, in the middle of a round, the proxy
   is stopped and a new one started on the same port. Each device runs `run(["funds"])` until its
   journal is empty (bounded rounds). Accounting: each record id is deleted exactly once, by an
   `acknowledge` the receipt named it in; the cloud received every id (some more than once: a lost
   receipt means the record is sent again, and the cloud deduplicates by id); journals end empty.
2. Kill -9 mid-upload. A device runs as a child process (`python -m bench.durability child`). The
   proxy holds the cloud's answer once the cloud has stored the upload, so the child is waiting for
   its receipt when it is SIGKILLed; its journal must still hold every record. Then children killed
   at random moments. A last child with the same journal file uploads what is left; the journal
   ends empty and the cloud has every id.

Prints the figures; exit 0 when every criterion holds, 1 otherwise. The fast test
`tests/hardening/test_durability.py` runs the same code with its defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from proxy_lab.cloud import Cloud
from proxy_lab.device import Device, DeviceSettings, Journal, ProxySettings
from proxy_lab.outcomes import Result
from proxy_lab.pki import PKI
from proxy_lab.proxy import LabProxy, ProxyConfig
from proxy_lab.proxy.faults.base import Ctx, Fault, Stage
from proxy_lab.proxy.faults.reset_after import ResetAfter
from proxy_lab.resolver import MapResolver

TRANSACTION_HOST = "cometservp1.pb.com"
REPO = Path(__file__).resolve().parent.parent


# -- two test-only faults (subclasses without `name=`: not registered, not usable from scenarios) ---
@dataclass(kw_only=True)
class RandomReset(Fault):
    """`reset_after` on a random share of tunnels, each after a random number of bytes (seeded)."""

    share: float = 0.5
    min_bytes: int = 100
    max_bytes: int = 8000
    seed: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rng = random.Random(self.seed)

    def stream(self, ctx: Ctx) -> Stage | None:
        if self._rng.random() >= self.share:
            return None
        self.applied += 1
        after = self._rng.randint(self.min_bytes, self.max_bytes)
        return ResetAfter(after_bytes=after, direction=self._rng.choice(["both", "upstream_to_client"])).stream(ctx)


class _HoldStage(Stage):
    directions = ("upstream_to_client",)

    def __init__(self, stored: Callable[[], bool], hold_s: float) -> None:
        self.stored = stored
        self.hold_s = hold_s

    async def upstream_to_client(self, data: bytes) -> bytes:
        if self.stored():  # the cloud has the upload: this chunk carries its receipt
            await asyncio.sleep(self.hold_s)
        return data


@dataclass(kw_only=True)
class HoldReceipt(Fault):
    """Holds the cloud's bytes toward the device once `stored()` says the upload arrived."""

    stored: Callable[[], bool] = lambda: False
    hold_s: float = 60.0

    def stream(self, ctx: Ctx) -> Stage | None:
        return _HoldStage(self.stored, self.hold_s)


# -- part 1: resets and a proxy restart -------------------------------------------------------------
@dataclass
class Figures:
    devices: int = 0
    transactions_per_device: int = 0
    sent: int = 0  # records put in the journals
    acknowledged: int = 0  # distinct ids deleted by a receipt
    acknowledged_twice: int = 0
    received_by_cloud: int = 0  # distinct ids the cloud stored
    resent: int = 0  # ids the cloud received more than once (a receipt was lost)
    lost: int = 0
    duplicated: int = 0
    left_in_journals: int = 0
    rounds: int = 0
    uploads: int = 0  # transaction uploads the cloud accepted
    tunnels_reset: int = 0
    proxy_restarts: int = 0
    tunnels_open_at_restart: int = 0
    transaction_outcomes: dict[str, int] = field(default_factory=dict)
    # part 2
    kills: int = 0
    kill_points: list[str] = field(default_factory=list)
    kill_sent: int = 0
    kill_lost: int = 0
    kill_left: int = 0
    kill_resent: int = 0
    kept_after_kill_mid_upload: bool = False
    seconds: float = 0.0
    criteria: dict[str, bool] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def resets_and_restart(
    pki: PKI, cloud: Cloud, workdir: Path, figures: Figures, *, devices: int, transactions: int,
    share: float, seed: int, max_rounds: int, restart_round: int, deadline: float, batch: int = 5,
) -> None:  # fmt: skip
    port = free_port()
    fault = RandomReset(hosts=[TRANSACTION_HOST], share=share, seed=seed)
    config = ProxyConfig(listen=("127.0.0.1", port), faults=[fault], connect_timeout_s=3.0)
    proxy = LabProxy(config, cloud.resolver)
    await proxy.start()
    settings = [
        DeviceSettings(model="sendpro-c", proxy=ProxySettings("127.0.0.1", port), meter_id=f"PBLAB-{i + 1:04d}",
                       connect_timeout_s=3.0, read_timeout_s=3.0, max_probe_s=15.0)
        for i in range(devices)
    ]  # fmt: skip
    fleet = [Device(s, pki, cloud.resolver, journal_path=workdir / f"journal-{i}.sqlite") for i, s in enumerate(settings)]
    added: list[list[str]] = [[] for _ in fleet]
    acked: Counter[str] = Counter()
    deleted_total = 0
    outcomes: Counter[str] = Counter()
    rng = random.Random(seed + 1)

    for device in fleet:
        original = device.journal.acknowledge

        def recording(ids: Any, _original: Callable[[Any], int] = original) -> int:
            nonlocal deleted_total
            ids = list(ids)
            deleted = _original(ids)
            acked.update(list(dict.fromkeys(ids)))  # each id once per call
            deleted_total += deleted
            return deleted

        device.journal.acknowledge = recording  # type: ignore[method-assign]

    async def restart_mid_round() -> None:
        nonlocal proxy
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        for _ in range(600):  # up to 3 s: stop while tunnels are in flight
            if proxy.stats.tunnels_open > 0:
                break
            await asyncio.sleep(0.005)
        figures.tunnels_open_at_restart = proxy.stats.tunnels_open
        await proxy.stop(grace_s=0.1)
        figures.proxy_restarts += 1
        proxy = LabProxy(config, cloud.resolver)
        await proxy.start()  # same port (reuse_address), same faults

    try:
        for round_no in range(max_rounds):
            for d, ids in zip(fleet, added, strict=True):  # mail pieces printed since the last upload
                for _ in range(min(batch, transactions - len(ids))):
                    ids.append(d.journal.add())
            busy = [d for d in fleet if d.journal.count() > 0]
            if not busy or time.monotonic() > deadline:
                break
            figures.rounds = round_no + 1
            restart = asyncio.ensure_future(restart_mid_round()) if round_no == restart_round else None
            runs: list[list[Result]] = await asyncio.gather(*(d.run(["funds"]) for d in busy))
            if restart is not None:
                await restart
            for results in runs:
                for r in results:
                    if TRANSACTION_HOST in r.endpoint:
                        outcomes[r.outcome.value] += 1
    finally:
        await proxy.stop(grace_s=0.2)
        for d in fleet:
            figures.left_in_journals += d.journal.count()
            d.close()

    everything = [i for ids in added for i in ids]
    received = cloud.state.transactions
    figures.devices, figures.transactions_per_device = devices, transactions
    figures.sent = len(everything)
    figures.acknowledged = sum(1 for i in everything if acked[i] >= 1)
    figures.acknowledged_twice = sum(1 for i in everything if acked[i] > 1)
    figures.received_by_cloud = sum(1 for i in everything if received.get(i, 0) >= 1)
    figures.resent = sum(1 for i in everything if received.get(i, 0) > 1)
    # lost: never stored by the cloud, or gone from the journal without a receipt naming it
    figures.lost = sum(1 for i in everything if received.get(i, 0) == 0) + (figures.sent - deleted_total - figures.left_in_journals)
    figures.duplicated = figures.acknowledged_twice + len(everything) - len(set(everything)) + sum(
        1 for i in acked if i not in set(everything)
    )
    figures.uploads = cloud.state.uploads["transactions"]
    figures.tunnels_reset = fault.applied
    figures.transaction_outcomes = dict(outcomes)


# -- part 2: kill -9 during an upload ---------------------------------------------------------------
def _open_log(log: Path) -> Any:
    return open(log, "ab")  # handed to the child, closed once it has it


async def _child(certs: Path, journal: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    out = _open_log(log)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.durability", "child", "--certs", str(certs), "--journal", str(journal),
            "--proxy-port", str(port), cwd=REPO, stdout=out, stderr=out, stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        out.close()


async def _wait(proc: asyncio.subprocess.Process, timeout_s: float) -> int | None:
    try:
        return await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)


async def kill_mid_upload(pki: PKI, cloud: Cloud, workdir: Path, figures: Figures, *, records: int,
                          random_kills: int, seed: int) -> None:  # fmt: skip
    journal_path = workdir / "killed-device.sqlite"
    with Journal(journal_path) as journal:
        ids = [journal.add() for _ in range(records)]
    figures.kill_sent = len(ids)
    port = free_port()
    hold = HoldReceipt(hosts=[TRANSACTION_HOST], stored=lambda: any(i in cloud.state.transactions for i in ids))
    log = workdir / "children.log"
    rng = random.Random(seed)

    # (a) the cloud has stored the upload and the receipt is held: kill -9 while the device waits
    async with LabProxy(ProxyConfig(listen=("127.0.0.1", port), faults=[hold]), cloud.resolver):
        child = await _child(pki.dir, journal_path, port, log)
        for _ in range(1500):  # up to 30 s
            if hold.stored() or child.returncode is not None:
                break
            await asyncio.sleep(0.02)
        stored = hold.stored()
        await asyncio.sleep(0.1)
        _kill(child)
        await _wait(child, 10)
        figures.kills += 1
        figures.kill_points.append("after the cloud stored the upload, before the receipt" if stored else "no upload seen")
    with Journal(journal_path) as journal:
        figures.kept_after_kill_mid_upload = stored and {r.id for r in journal.pending()} == set(ids)

    # (b) kills at random moments of a run, then (c) a clean run with the same journal file
    async with LabProxy(ProxyConfig(listen=("127.0.0.1", port)), cloud.resolver):
        for _ in range(random_kills):
            with Journal(journal_path) as journal:
                before = journal.count()
            uploads = cloud.state.uploads["transactions"]
            child = await _child(pki.dir, journal_path, port, log)
            delay = rng.uniform(0.1, 0.8)
            await asyncio.sleep(delay)
            _kill(child)
            await _wait(child, 10)
            figures.kills += 1
            with Journal(journal_path) as journal:
                after = journal.count()
            if after < before:
                where = "after the receipt was applied"
            elif cloud.state.uploads["transactions"] > uploads:
                where = "after the cloud stored the upload, before the receipt was applied"
            else:
                where = "before the upload reached the cloud"
            figures.kill_points.append(f"at {delay:.2f} s: {where}")
            with Journal(journal_path) as journal:
                if journal.count() == 0:
                    journal.add()  # a finished run emptied it: give the next kill something to lose
                    ids.append(journal.pending()[0].id)
        for _ in range(5):  # the clean run, retried if a restart finds the proxy busy
            child = await _child(pki.dir, journal_path, port, log)
            await _wait(child, 60)
            with Journal(journal_path) as journal:
                if journal.count() == 0:
                    break
    figures.kill_sent = len(ids)
    with Journal(journal_path) as journal:
        figures.kill_left = journal.count()
    figures.kill_lost = sum(1 for i in ids if cloud.state.transactions.get(i, 0) == 0)
    figures.kill_resent = sum(1 for i in ids if cloud.state.transactions.get(i, 0) > 1)


async def run_all(args: argparse.Namespace, workdir: Path) -> Figures:
    figures = Figures()
    started = time.monotonic()
    pki = PKI.load(Path(args.certs) if args.certs else workdir / "certs")
    async with Cloud(pki, idle_timeout_s=10.0) as cloud:
        await resets_and_restart(
            pki, cloud, workdir, figures, devices=args.devices, transactions=args.transactions, share=args.reset_share,
            seed=args.seed, max_rounds=args.max_rounds, restart_round=1, deadline=started + args.max_seconds,
        )  # fmt: skip
        if args.random_kills >= 0:
            await kill_mid_upload(pki, cloud, workdir, figures, records=args.kill_records,
                                  random_kills=args.random_kills, seed=args.seed)  # fmt: skip
    figures.seconds = time.monotonic() - started
    f = figures
    f.criteria = {
        "every record acknowledged exactly once": f.acknowledged == f.sent and f.acknowledged_twice == 0,
        "none lost (the cloud stored every id)": f.lost == 0 and f.received_by_cloud == f.sent,
        "none duplicated": f.duplicated == 0,
        "journals empty at the end": f.left_in_journals == 0,
        "the proxy was restarted with tunnels in flight": f.proxy_restarts == 1 and f.tunnels_open_at_restart > 0,
    }
    if args.random_kills >= 0:
        f.criteria |= {
            "kill -9 mid-upload kept every record": f.kept_after_kill_mid_upload,
            "after the kills: none lost, journal empty": f.kill_lost == 0 and f.kill_left == 0,
        }
    return figures


def print_figures(f: Figures) -> None:
    print(f"devices x records     {f.devices} x {f.transactions_per_device} = {f.sent} records, {f.rounds} rounds, "
          f"{f.seconds:.1f} s")  # fmt: skip
    print(f"faults                {f.tunnels_reset} tunnels to {TRANSACTION_HOST} reset, {f.proxy_restarts} proxy restart "
          f"({f.tunnels_open_at_restart} tunnels open when it stopped)")
    print(f"transaction uploads   {f.uploads} accepted by the cloud; device outcomes "
          f"{', '.join(f'{k} {v}' for k, v in sorted(f.transaction_outcomes.items()))}")  # fmt: skip
    print(f"accounting            acknowledged {f.acknowledged}, twice {f.acknowledged_twice}; cloud stored "
          f"{f.received_by_cloud} ({f.resent} received again after a lost receipt); lost {f.lost}; "
          f"duplicated {f.duplicated}; left in journals {f.left_in_journals}")  # fmt: skip
    if f.kills:
        print(f"kill -9               {f.kills} kills ({'; '.join(f.kill_points)}); {f.kill_sent} records; lost "
              f"{f.kill_lost}; left {f.kill_left}; received again {f.kill_resent}")  # fmt: skip
    for name, ok in f.criteria.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--transactions", type=int, default=25, help="records per device")
    parser.add_argument("--reset-share", type=float, default=0.5, help="share of transaction tunnels reset")
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--kill-records", type=int, default=10)
    parser.add_argument("--random-kills", type=int, default=2, help="-1 skips the kill -9 part")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--certs", default=None, help="certificate directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, metavar="PATH")


# -- the child: one device run with a given journal --------------------------------------------------
def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.durability child")
    parser.add_argument("--certs", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--proxy-port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = DeviceSettings(model="sendpro-c", proxy=ProxySettings("127.0.0.1", args.proxy_port),
                              meter_id="PBLAB-KILL", connect_timeout_s=5.0, read_timeout_s=30.0, max_probe_s=60.0)  # fmt: skip

    async def go() -> int:
        with Device(settings, PKI(Path(args.certs)), MapResolver(), journal_path=Path(args.journal)) as device:
            if device.journal.count() == 0:
                return 0
            await asyncio.wait_for(device.run(["funds"]), 90)
            return 0 if device.journal.count() == 0 else 1

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.durability", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="proxy-lab-durability-") as tmp:
        figures = asyncio.run(run_all(args, Path(tmp)))
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n", encoding="utf-8")
    return 0 if all(figures.criteria.values()) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
