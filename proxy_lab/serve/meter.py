"""The served meter: the real Device probing through the served proxy to the real cloud, on an
interval and on demand, and the status of each of its model's services since the last change.

No outcome is computed here: every verdict is the Device's (proxy_lab.device), a service's outcome
is `service_outcomes` of its endpoints' Results as in every report, and the cause and remedy of a
failure are proxy_lab.advice's (`cause_of`, `remedy`, `guide_rule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from proxy_lab.advice import cause_of, guide_rule, remedy
from proxy_lab.catalog import Catalog, Service
from proxy_lab.device import Device, DeviceSettings
from proxy_lab.outcomes import CertSummary, Outcome, Result, service_outcomes
from proxy_lab.pki import PKI
from proxy_lab.resolver import Resolver
from proxy_lab.serve.events import EventHub, ProbeFinished
from proxy_lab.tasks import create_task

Trigger = Literal["interval", "api", "start"]


def _cert(c: CertSummary) -> dict[str, str]:
    return {"subject": c.subject, "issuer": c.issuer, "sha256": c.sha256, "not_after": c.not_after}


def evidence_of(r: Result) -> dict[str, Any]:
    """A Result's evidence as the dashboard shows it: the CONNECT exchange, the chain the meter was
    shown beside the one it expected (the PB root's), the TLS error and the wire transcript."""
    ev = r.evidence
    return {
        "one_line": ev.one_line(),
        "connect": (
            None if ev.connect_status is None
            else {"status": ev.connect_status, "reason": ev.connect_reason, "headers": [list(h) for h in ev.connect_headers]}
        ),
        "auth_schemes": list(ev.auth_schemes),
        "issuer_shown": ev.chain_shown[0].issuer if ev.chain_shown else "",
        "issuer_expected": ev.chain_expected[0].issuer if ev.chain_expected else "",
        "chain_shown": [_cert(c) for c in ev.chain_shown],
        "chain_expected": [_cert(c) for c in ev.chain_expected],
        "tls_error": ev.tls_error,
        "tls_alert": ev.tls_alert,
        "http_status": ev.http_status,
        "kbps": round(ev.kbps, 1) if ev.kbps is not None and math.isfinite(ev.kbps) else None,
        "transcript": list(ev.transcript[-40:]),
    }  # fmt: skip


@dataclass
class ServiceState:
    """One service of the model as the dashboard shows it: the latest outcome and since when."""

    service: Service
    outcome: Outcome | None = None  # None until the first run
    since: float | None = None  # when the outcome became what it is
    checked: float | None = None  # the last run that probed it
    results: list[Result] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        s = self.service
        out: dict[str, Any] = {
            "name": s.name, "title": s.title, "required": s.required, "level": s.level,
            "outcome": self.outcome.value if self.outcome else None,
            "symbol": self.outcome.symbol if self.outcome else "…",
            "meaning": self.outcome.meaning if self.outcome else "not probed yet",
            "since": self.since, "checked": self.checked,
            "endpoints": [{"url": r.endpoint, "outcome": r.outcome.value, "detail": r.detail} for r in self.results],
            "detail": "", "cause": "", "remedy": "", "guide_rule": "", "evidence": None, "endpoint": "",
        }  # fmt: skip
        failing = [r for r in self.results if r.outcome != Outcome.PASS]
        if failing:
            shown = max(failing, key=lambda r: r.outcome.severity)
            out.update(
                detail=shown.detail, endpoint=shown.endpoint, cause=cause_of(shown)[1],
                remedy=remedy(shown), guide_rule=guide_rule(shown), evidence=evidence_of(shown),
            )  # fmt: skip
        return out


class Meter:
    """The simulated meter of a served lab, behind `settings.proxy` (the served proxy or --proxy)."""

    def __init__(
        self,
        settings: DeviceSettings,
        pki: PKI,
        resolver: Resolver,
        catalog: Catalog,
        events: EventHub,
        *,
        journal_path: Path,
        interval_s: float = 5.0,
    ) -> None:
        self.settings = settings
        self.events = events
        self.interval_s = interval_s
        self.device = Device(settings, pki, resolver, journal_path=journal_path, catalog=catalog, scenario="serve")
        self.services = {s.name: ServiceState(s) for s in catalog.for_model(settings.model)}
        self.runs = 0
        self.running = False
        self.last_run_at: float | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._nudged = asyncio.Event()

    def start(self) -> None:
        self._task = create_task(self._loop(), name="served meter")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.device.close()

    def nudge(self) -> None:
        """Start the next run as soon as the one in progress (if any) ends: the faults changed."""
        self._nudged.set()

    async def _loop(self) -> None:
        trigger: Trigger = "start"
        while not self._stop.is_set():
            self._nudged.clear()
            await self.probe(trigger)
            trigger = "interval"
            stop, nudged = create_task(self._stop.wait(), name="meter stop"), create_task(self._nudged.wait(), name="meter nudge")
            try:
                await asyncio.wait({stop, nudged}, timeout=self.interval_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                nudged.cancel()

    async def probe(self, trigger: Trigger = "api") -> ProbeFinished:
        """Run the meter now (after a run in progress ends), record and publish what it saw."""
        async with self._lock:
            self.running = True
            started = time.monotonic()
            try:
                results = await self.device.run(list(self.services))
            finally:
                self.running = False
            now = time.time()
            self.runs += 1
            self.last_run_at = now
            changed = self._record(results, now)
            event = ProbeFinished(
                run=self.runs, trigger=trigger, services=tuple(self.status()),
                changed=tuple(changed), elapsed_s=round(time.monotonic() - started, 3),
            )  # fmt: skip
            self.events.publish(event)
            return event

    def _record(self, results: list[Result], now: float) -> list[str]:
        by_service: dict[str, list[Result]] = {}
        for r in results:
            by_service.setdefault(r.service, []).append(r)
        outcomes = service_outcomes(results)
        changed = []
        for name, state in self.services.items():
            outcome = outcomes.get(name)
            if outcome is None:  # not probed in this run
                continue
            if outcome != state.outcome:
                changed.append(name)
                state.since = now
            state.outcome = outcome
            state.checked = now
            state.results = by_service.get(name, [])
        return changed

    def status(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.services.values()]
