"""The reports' shared view of runs: one cell per scenario and service, its findings, its remedy.

Every format (terminal, JSON, JUnit, Markdown, HTML) reads runs through this module, so they all
agree on which cells are findings, which endpoint stands for a service (its worst one), how the
service was scored (the catalog's rule, and for a service the guide lets work in several ways the
sentence that says which way worked), which rule and which remedy go with it, and which problems are
setup failures rather than outcomes. It works on `proxy_lab.runs.ScenarioRun` records and never
imports the runner.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from proxy_lab.advice import guide_rule, remedy
from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.outcomes import Outcome, Result, ServiceScore, score_service, worst

if TYPE_CHECKING:
    from proxy_lab.runs import ScenarioRun

CellStatus = Literal["met", "not_met", "no_result", "not_expected", "skipped", "setup_error"]

SHORT = {
    "distributor": "distrib",
    "funds": "funds",
    "downloads": "downloads",
    "os_updates": "os upd",
    "accounting": "account",
    "online_help": "help",
    "health_data": "health",
    "connectivity_check": "conncheck",
    "pb_web_services": "pb web",
    "parcel_shipping": "parcel",
    "remote_access": "remote",
    "device_management": "dev mgmt",
}


@dataclass(frozen=True)
class Cell:
    """One scenario x service cell: what was expected, what was seen, and the endpoints behind it."""

    scenario: str
    service: str
    expected: tuple[Outcome, ...]
    observed: Outcome | None
    results: tuple[Result, ...]
    status: CellStatus
    score: ServiceScore | None = None  # by the catalog's rule, when the catalog has the service

    @property
    def sentence(self) -> str:
        """How the service's outcome was reached, for a service scored by the `any` rule ("pass via
        the DynGate fallback on port 80 at ...; port 5938 refused"); empty for every other service."""
        return self.score.sentence if self.score is not None and self.score.rule == "any" else ""

    @property
    def way_failed(self) -> bool:
        """A service that works in several ways passed by one of them while another failed."""
        return bool(self.sentence) and self.observed is not None and self.observed.ok and any(
            not r.outcome.ok for r in self.results
        )

    @property
    def worst(self) -> Result | None:
        """The endpoint that decides the service's outcome (its worst; the first of equals)."""
        return worst_result(self.results)

    @property
    def unexpected(self) -> bool:
        return self.status in ("not_met", "no_result", "not_expected")

    @property
    def finding(self) -> bool:
        """Shown under the matrix: anything not as expected, every failure even when expected, and a
        service that passed by one way while another way failed (the sentence says which)."""
        return self.unexpected or (self.observed is not None and self.observed != Outcome.PASS) or self.way_failed

    def expected_text(self) -> str:
        return " or ".join(o.value for o in self.expected) or "nothing (not on this model)"

    def observed_text(self) -> str:
        return self.observed.value if self.observed is not None else "no result"

    def observed_sentence(self) -> str:
        """The observed outcome, said with the way that worked where the service has several."""
        return self.sentence or self.observed_text()


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def printable(text: object) -> str:
    """Text from the network with its control characters made visible (ESC becomes \\x1b)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


_CREDENTIALS = re.compile(r"((?:proxy-)?authorization:\s*)(\S+)(?:\s+(\S+))?", re.IGNORECASE)


def redact(line: str) -> str:
    """A transcript line without credentials: Basic keeps only the user name (useful when its case
    is the bug); any other scheme's token is hidden entirely."""

    def hide(m: re.Match[str]) -> str:
        scheme, token = m.group(2), m.group(3)
        if token is None:
            return f"{m.group(1)}<hidden>"
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(token, validate=True).decode("utf-8").partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return f"{m.group(1)}{scheme} <hidden>"
            return f"{m.group(1)}{scheme} <user {user!r}, password hidden>"
        return f"{m.group(1)}{scheme} <hidden>"

    return _CREDENTIALS.sub(hide, line)


def transcript(result: Result) -> list[str]:
    """The result's wire transcript as reports show it: credentials hidden, control characters visible."""
    return [printable(redact(line)) for line in result.evidence.transcript]


def anchor(*parts: object) -> str:
    """An HTML id made of ASCII letters, digits and '-' only (callers add an index for uniqueness)."""
    return "-".join("".join(c if c.isascii() and c.isalnum() else "-" for c in str(p)) for p in parts)


def worst_result(results: Iterable[Result]) -> Result | None:
    mine = list(results)
    if not mine:
        return None
    w = worst(r.outcome for r in mine)
    return next(r for r in mine if r.outcome == w)


def target_label(target: str) -> str:
    """The target as reports show it: a proxy URL loses its password (reports end up in tickets)."""
    try:
        url = urlsplit(target)
        password = url.password
    except ValueError:
        return target
    if password is None or not url.hostname:
        return target
    user = url.username or ""
    netloc = f"{user}:***@" + url.netloc.rpartition("@")[2]
    return urlunsplit(url._replace(netloc=netloc))


def run_label(run: ScenarioRun) -> str:
    return run.scenario.id if run.target == "lab" else f"{run.scenario.id} [{target_label(run.target)}]"


def services_of(runs: Sequence[ScenarioRun], catalog: Catalog | None = None) -> list[str]:
    """The matrix columns: the services some run expects or saw, in the catalog's order, then any others."""
    catalog = catalog or load_catalog()
    named: dict[str, None] = {}
    for run in runs:
        for s in (*run.expected, *run.observed, *(r.service for r in run.results)):
            named.setdefault(s)
    return [s for s in catalog.services if s in named] + [s for s in named if s not in catalog.services]


def run_model(run: ScenarioRun) -> str:
    """The meter model the run's device played (`sendpro-c` or `sendpro-plus`)."""
    return run.scenario.device.model


def cell(run: ScenarioRun, service: str, catalog: Catalog | None = None) -> Cell | None:
    """The cell of one service in one run, or None when the run neither expects nor saw it."""
    catalog = catalog or load_catalog()
    results = tuple(r for r in run.results if r.service == service)
    expected = tuple(run.expected.get(service, ()))
    score = score_service(catalog.services[service], results) if results and service in catalog.services else None
    if score is not None and score.rule == "any" and not any(catalog.endpoint(service, r.endpoint) for r in results):
        score = None  # results of endpoints the catalog does not list: no way to name
    observed = run.observed.get(service)
    if observed is None and results:
        observed = score.outcome if score is not None else worst(r.outcome for r in results)
    in_run = service in run.expected or observed is not None
    if not in_run:
        return None
    status: CellStatus
    if run.setup_error:
        status = "setup_error"
    elif run.skipped:
        status = "skipped"
    elif service not in run.expected:
        status = "not_expected"
    elif observed is None:
        status = "no_result"
    else:
        status = "met" if observed in expected else "not_met"
    return Cell(run.scenario.id, service, expected, observed, results, status, score)


def cells(run: ScenarioRun, services: Sequence[str] | None = None) -> list[Cell]:
    """The run's cells in matrix order (the catalog's unless `services` is given)."""
    catalog = load_catalog()
    order = list(services) if services is not None else services_of([run], catalog)
    return [c for s in order if (c := cell(run, s, catalog)) is not None]


def findings(run: ScenarioRun, services: Sequence[str] | None = None) -> list[Cell]:
    if run.setup_error or run.skipped:
        return []
    return [c for c in cells(run, services) if c.finding]


def run_problems(run: ScenarioRun) -> list[str]:
    """Expectations beyond the cells: the follow-up upload and the transaction journal."""
    problems: list[str] = []
    if run.setup_error or run.skipped:
        return problems
    for r in getattr(run, "followup_results", []) or []:
        if not r.outcome.ok:
            problems.append(
                f"follow-up {r.service} on a clean path failed at {r.endpoint}: {r.outcome.value} ({r.detail})"
            )
    after = getattr(run, "journal_after_followup", None)
    if after not in (None, 0):
        problems.append(f"journal still holds {after} record(s) after the follow-up upload")
    return problems


def remedy_for(run: ScenarioRun, result: Result) -> str:
    """The change that would turn this result into a pass, for the cause diagnosed from what was
    observed (`proxy_lab.advice`, as the field check gives it); empty for a pass. Never the
    scenario's own `remedy`: that says what fixes the fault the scenario meant to show, which is not
    what a run saw when its proxy did something else (a 502 where SSL inspection was expected)."""
    return remedy(result) if result.outcome != Outcome.PASS else ""


def lesson_for(run: ScenarioRun) -> str:
    """The scenario's lesson, with its own remedy as part of it (what fixes the fault it shows)."""
    s = run.scenario
    if s.remedy:
        return f"{s.lesson} The scenario's fix: {s.remedy}." if s.lesson else f"The scenario's fix: {s.remedy}."
    return s.lesson


def rule_for(result: Result) -> str:
    return guide_rule(result) or ""


def summary(runs: Sequence[ScenarioRun]) -> dict[str, int]:
    counts = {"runs": len(runs), "met": 0, "not_met": 0, "skipped": 0, "setup_error": 0}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return counts


def model_differences(runs: Sequence[ScenarioRun], catalog: Catalog | None = None) -> list[str]:
    """What differs between the meter models the runs played, one sentence each; empty when the
    runs played one model only. The catalog decides it (`Service.models`); where that split is an
    assumption, the sentence names it (docs/assumptions.md)."""
    catalog = catalog or load_catalog()
    played = sorted({run_model(r) for r in runs})
    if len(played) < 2:
        return []
    lines: list[str] = []
    for model in played:
        others = [m for m in played if m != model]
        only = [s for s in catalog.for_model(model) if not any(m in s.models for m in others)]
        for s in only:
            label = f" (assumption {', '.join(s.assumptions)}: docs/assumptions.md)" if s.assumptions else ""
            count = len(s.endpoints)
            lines.append(f"only the {model} has {s.name} ({s.title}, {count} endpoint{'s' * (count != 1)}){label}")
    for model in played:
        mine = [r for r in runs if run_model(r) == model]
        met = sum(r.status == "met" for r in mine)
        lines.append(f"{model}: {len(mine)} scenario{'s' * (len(mine) != 1)}, {met} met their expectation")
    return lines + [_pair_line(a, b) for a, b in model_pairs(runs)]


def model_pairs(runs: Sequence[ScenarioRun]) -> list[tuple[ScenarioRun, ScenarioRun]]:
    """Runs of different models in the same set-up (equal `[proxy]` and `[cloud]` tables, the same
    device settings but its model, the same target): the first match of each run, in run order."""
    pairs: list[tuple[ScenarioRun, ScenarioRun]] = []
    for i, a in enumerate(runs):
        for b in runs[i + 1 :]:
            if (
                run_model(a) != run_model(b) and a.target == b.target and a.scenario.proxy == b.scenario.proxy
                and a.scenario.cloud == b.scenario.cloud
                and dataclasses.replace(a.scenario.device, model=run_model(b)) == b.scenario.device
                and not (a.setup_error or a.skipped or b.setup_error or b.skipped)
            ):  # fmt: skip
                pairs.append((a, b))
                break
    return pairs


def _pair_line(a: ScenarioRun, b: ScenarioRun) -> str:
    """One sentence comparing two models' runs behind the same proxy."""
    shared = [s for s in a.observed if s in b.observed]
    differ = [f"{s} ({run_model(a)} {a.observed[s].value}, {run_model(b)} {b.observed[s].value})" for s in shared
              if a.observed[s] != b.observed[s]]  # fmt: skip
    only = [f"{s} only on the {run_model(r)} ({r.observed[s].value})" for r, o in ((a, b), (b, a)) for s in r.observed
            if s not in o.observed]  # fmt: skip
    same = f"the {len(shared)} shared services see the same outcomes" if not differ else f"differ: {', '.join(differ)}"
    return f"{a.scenario.id} and {b.scenario.id} (the same set-up): {same}" + (f"; {'; '.join(only)}" if only else "")
