"""The device never loses or duplicates a transaction: resets, a proxy restart, and kill -9 mid-upload.

Runs bench/durability.py's two parts with its defaults (4 devices x 25 records through a proxy that
resets half the tunnels to cometservp1.pb.com and is restarted mid-round; then a device process
killed while waiting for its receipt, and at random moments): every record is acknowledged exactly
once, the cloud has every id, and the journals end empty. `python -m bench.durability` prints the
same figures.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from bench.durability import add_arguments, print_figures, run_all


@pytest.mark.timeout(90)
def test_no_transaction_is_lost_or_duplicated_under_resets_a_restart_and_kill_9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--certs", str(tmp_path / "certs"), "--max-seconds", "45"])
    figures = asyncio.run(asyncio.wait_for(run_all(args, tmp_path), 80))
    print_figures(figures)
    assert figures.sent == 100 and figures.tunnels_reset > 0  # negative control: faults did happen
    assert figures.kills >= 1 and figures.kept_after_kill_mid_upload
    failed = [name for name, ok in figures.criteria.items() if not ok]
    assert failed == [], capsys.readouterr().out


@pytest.mark.timeout(60)
def test_negative_control_a_journal_that_deletes_on_send_is_caught_losing_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same accounting flags a device that deletes records when it sends them, not on receipt."""
    from bench.durability import Figures, resets_and_restart
    from proxy_lab.cloud import Cloud
    from proxy_lab.device.journal import Journal
    from proxy_lab.pki import PKI

    pending, acknowledge = Journal.pending, Journal.acknowledge

    def pending_and_forget(self: Journal) -> list:  # type: ignore[type-arg]
        records = pending(self)
        acknowledge(self, [r.id for r in records])  # the bug: deleted before any receipt
        return records

    monkeypatch.setattr(Journal, "pending", pending_and_forget)

    async def scenario() -> Figures:
        figures = Figures()
        pki = PKI.load(tmp_path / "certs")
        async with Cloud(pki, idle_timeout_s=10.0) as cloud:
            await resets_and_restart(pki, cloud, tmp_path, figures, devices=2, transactions=10, share=1.0, seed=5,
                                     max_rounds=4, restart_round=99, deadline=float("inf"))  # fmt: skip
        return figures

    figures = asyncio.run(asyncio.wait_for(scenario(), 50))
    assert figures.tunnels_reset > 0
    assert figures.lost > 0 and figures.left_in_journals == 0  # records gone, and the cloud never got them
