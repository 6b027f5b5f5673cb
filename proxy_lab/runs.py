"""Scenario runs as records: what one run of a scenario saw and expected, and its JSON form.

Reports, the namespace child's wire format, netns and the targets import a run from here without
importing the runner (`proxy_lab.runner`) that produces it. `Progress` and `EventSink` are the
callbacks a batch of runs reports through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.outcomes import Outcome, Result
from proxy_lab.scenarios import Scenario
from proxy_lab.typed import build, encode

# ("start", scenario, None) before a scenario runs, ("done", scenario, run) after.
Progress = Callable[[str, Scenario, "ScenarioRun | None"], None]
# One line per wire exchange as it happens (`proxy-lab run --verbose`).
EventSink = Callable[[str], None]


@dataclass
class ScenarioRun:
    """One scenario run against one target: what the device saw, what was expected."""

    scenario: Scenario
    target: str
    results: list[Result] = field(default_factory=list)
    observed: dict[str, Outcome] = field(default_factory=dict)
    expected: dict[str, tuple[Outcome, ...]] = field(default_factory=dict)
    setup_error: str | None = None
    skipped: str | None = None
    elapsed_s: float = 0.0
    journal_before: int = 0
    journal_after: int = 0
    followup_results: list[Result] = field(default_factory=list)
    journal_after_followup: int | None = None

    @property
    def mismatches(self) -> dict[str, tuple[Outcome, tuple[Outcome, ...]]]:
        return {
            s: (o, self.expected[s])
            for s, o in self.observed.items()
            if s in self.expected and o not in self.expected[s]
        }

    @property
    def met(self) -> bool:
        if self.setup_error or self.skipped:
            return False
        if self.followup_results and any(not r.outcome.ok for r in self.followup_results):
            return False
        if self.journal_after_followup not in (None, 0):
            return False
        return not self.mismatches and set(self.observed) == set(self.expected)

    @property
    def status(self) -> str:
        if self.setup_error:
            return "setup_error"
        if self.skipped:
            return "skipped"
        return "met" if self.met else "not_met"

    def unmet(self) -> list[str]:
        """One line per way the run missed its expectation, naming the service, the expected and
        the observed outcome, and the endpoint that decided it. Empty when the run was met."""
        lines: list[str] = []
        if self.setup_error:
            return [f"setup failure (not an outcome): {self.setup_error}"]
        if self.skipped:
            return [f"skipped: {self.skipped}"]
        for service, (observed, expected) in self.mismatches.items():
            worst = next((r for r in self.results if r.service == service and r.outcome == observed), None)
            at = f" at {worst.endpoint}: {worst.detail}" if worst is not None else ""
            lines.append(f"{service}: expected {' or '.join(o.value for o in expected)}, observed {observed.value}{at}")
        for service in sorted(set(self.expected) - set(self.observed)):
            lines.append(f"{service}: expected {' or '.join(o.value for o in self.expected[service])}, observed no result")
        for service in sorted(set(self.observed) - set(self.expected)):
            lines.append(f"{service}: not expected in this scenario, observed {self.observed[service].value}")
        for r in self.followup_results:
            if not r.outcome.ok:
                lines.append(f"follow-up {r.service} on a clean path: observed {r.outcome.value} at {r.endpoint}: {r.detail}")
        if self.journal_after_followup not in (None, 0):
            lines.append(f"journal still holds {self.journal_after_followup} record(s) after the follow-up upload")
        return lines


def encode_run(run: ScenarioRun) -> dict[str, Any]:
    """A run as JSON, without its scenario (the receiving side has it already)."""
    out: dict[str, Any] = encode(run)
    out.pop("scenario", None)
    return out


def decode_run(value: Any, scenario: Scenario) -> ScenarioRun:
    """A run from `encode_run`, joined to the caller's own `scenario`."""
    return build(ScenarioRun, value, given={"scenario": scenario})
