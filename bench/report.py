"""Figures, ratios and the speed targets: the rich tables, the Markdown tables and bench/results.json.

A figure is the median of its repetitions; it is marked invalid (`valid: false`, shown with `!`)
when any repetition failed its check (bulk integrity, too many failed setups, too few idle
tunnels). Ratios are plain quotients (figure / reference figure): above 1 is better for rates and
throughput, below 1 is better for latency, memory and CPU.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FigureSpec:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int


FIGURES = (
    FigureSpec("setup_seq_per_s", "setups/s seq", "setups/s", True, 0),
    FigureSpec("setup_seq_p50_ms", "p50 ms seq", "ms", False, 2),
    FigureSpec("setup_seq_p99_ms", "p99 ms seq", "ms", False, 2),
    FigureSpec("setup_conc_per_s", "setups/s x100", "setups/s", True, 0),
    FigureSpec("setup_conc_p50_ms", "p50 ms x100", "ms", False, 1),
    FigureSpec("setup_conc_p99_ms", "p99 ms x100", "ms", False, 1),
    FigureSpec("bulk1_mb_s", "MB/s 1 tunnel", "MB/s", True, 0),
    FigureSpec("bulk4_mb_s", "MB/s 4 tunnels", "MB/s", True, 0),
    FigureSpec("idle_kib_per_tunnel", "KiB/idle tunnel", "KiB", False, 1),
    FigureSpec("cpu_s_per_gib", "CPU s/GiB", "CPU s per GiB", False, 2),
)
SPECS = {spec.key: spec for spec in FIGURES}
REFERENCES = ("tinyproxy", "direct")


@dataclass(frozen=True)
class Target:
    id: str
    text: str
    figure: str
    peer: str
    threshold: float  # lab / peer must be >= threshold (higher is better) or <= threshold (lower is better)


TARGETS = (
    Target("setups_seq_vs_tinyproxy", "setups/s sequential >= 1.0x tinyproxy", "setup_seq_per_s", "tinyproxy", 1.0),
    Target("setups_conc_vs_tinyproxy", "setups/s 100 concurrent >= 1.0x tinyproxy", "setup_conc_per_s", "tinyproxy", 1.0),
    Target("setups_seq_vs_proxypy", "setups/s sequential >= 10x proxy.py", "setup_seq_per_s", "proxypy", 10.0),
    Target("setups_conc_vs_proxypy", "setups/s 100 concurrent >= 10x proxy.py", "setup_conc_per_s", "proxypy", 10.0),
    Target("setups_seq_vs_mitmproxy", "setups/s sequential >= 10x mitmproxy", "setup_seq_per_s", "mitmproxy", 10.0),
    Target("setups_conc_vs_mitmproxy", "setups/s 100 concurrent >= 10x mitmproxy", "setup_conc_per_s", "mitmproxy", 10.0),
    Target("bulk1_vs_squid", "bulk MB/s 1 tunnel >= 1.0x Squid", "bulk1_mb_s", "squid", 1.0),
    Target("bulk4_vs_squid", "bulk MB/s 4 tunnels >= 1.0x Squid", "bulk4_mb_s", "squid", 1.0),
    Target("bulk1_vs_haproxy", "bulk MB/s 1 tunnel >= 0.8x haproxy (splice)", "bulk1_mb_s", "haproxy", 0.8),
    Target("bulk4_vs_haproxy", "bulk MB/s 4 tunnels >= 0.8x haproxy (splice)", "bulk4_mb_s", "haproxy", 0.8),
    Target("idle_memory_vs_tinyproxy", "memory per idle tunnel <= tinyproxy", "idle_kib_per_tunnel", "tinyproxy", 1.0),
)
THROTTLE_TOLERANCE_PCT = 3.0


@dataclass
class Samples:
    """Every repetition of one figure for one peer."""

    values: list[float] = field(default_factory=list)
    valid: bool = True
    notes: list[str] = field(default_factory=list)

    def add(self, value: float | None, valid: bool = True, note: str = "") -> None:
        if value is not None and not math.isnan(value):
            self.values.append(value)
        if not valid:
            self.valid = False
        if note and note not in self.notes:
            self.notes.append(note)

    def as_dict(self, spec: FigureSpec) -> dict[str, Any]:
        value = statistics.median(self.values) if self.values else None
        return {
            "value": _round(value, spec.digits + 2), "unit": spec.unit, "reps": [_round(v, spec.digits + 2) for v in self.values],
            "valid": self.valid and value is not None, "note": "; ".join(self.notes)[:600],
        }  # fmt: skip


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        import uvloop

        uvloop_version: str | None = uvloop.__version__
    except ImportError:
        uvloop_version = None
    return {
        "cpu_model": model or platform.processor(), "cores": os.cpu_count(), "kernel": platform.release(),
        "os": platform.platform(), "python": platform.python_version(), "memory_gib": round(memory_kib / 2**20, 1),
        "uvloop": uvloop_version, "loadavg_at_start": list(os.getloadavg()),
    }  # fmt: skip


def ratios(figures: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for peer, peer_figures in figures.items():
        out[peer] = {}
        for key, fig in peer_figures.items():
            out[peer][key] = {}
            for ref in REFERENCES:
                ref_value = figures.get(ref, {}).get(key, {}).get("value")
                value = fig.get("value")
                ok = value is not None and ref_value not in (None, 0)
                out[peer][key][f"to_{ref}"] = round(value / ref_value, 3) if ok else None  # type: ignore[operator]
    return out


def evaluate_targets(figures: dict[str, dict[str, dict[str, Any]]], throttle: dict[str, Any]) -> list[dict[str, Any]]:
    """Pass, fail or skipped for each speed target, with the two figures and their ratio."""
    results = []
    lab = figures.get("lab", {})
    for target in TARGETS:
        spec = SPECS[target.figure]
        mine = lab.get(target.figure, {})
        theirs = figures.get(target.peer, {}).get(target.figure, {})
        row: dict[str, Any] = {"id": target.id, "text": target.text, "lab": mine.get("value"),
                               "peer": theirs.get("value"), "ratio": None, "threshold": target.threshold}  # fmt: skip
        if mine.get("value") is None:
            row.update(status="skipped", note="the lab proxy was not measured")
        elif theirs.get("value") is None:
            row.update(status="skipped", note=f"{target.peer} was not measured")
        elif theirs["value"] <= 0:
            row.update(status="skipped", note=f"{target.peer}'s figure is {theirs['value']}")
        else:
            ratio = mine["value"] / theirs["value"]
            met = ratio >= target.threshold if spec.higher_is_better else ratio <= target.threshold
            row["ratio"] = round(ratio, 3)
            notes = []
            if not mine.get("valid", False):
                notes.append("the lab proxy's figure is invalid")
                met = False
            if not theirs.get("valid", False):
                notes.append(f"{target.peer}'s figure is invalid")
            row.update(status="pass" if met else "fail", note="; ".join(notes))
        results.append(row)
    runs = throttle.get("runs", [])
    if not runs:
        results.append({"id": "throttle_accuracy", "text": f"throttle goodput within +-{THROTTLE_TOLERANCE_PCT:g}% of the setting",
                        "status": "skipped", "note": throttle.get("note", "not measured")})  # fmt: skip
    for run in runs:
        err = run.get("error_pct")
        ok = run.get("valid") and err is not None and not math.isnan(err) and abs(err) <= THROTTLE_TOLERANCE_PCT
        results.append({
            "id": f"throttle_{run['setting_kbps']:g}_{run['direction']}",
            "text": f"throttle {run['setting_kbps']:g} kbit/s {run['direction']} within +-{THROTTLE_TOLERANCE_PCT:g}%",
            "lab": run.get("measured_kbps"), "peer": run["setting_kbps"], "error_pct": err,
            "threshold": THROTTLE_TOLERANCE_PCT, "status": "pass" if ok else "fail",
            "note": "; ".join(n for n in (run.get("detail", ""), "" if throttle.get("long_enough", True)
                                          else "window shorter than 10 s (--quick)") if n),
        })  # fmt: skip
    return results


def fmt(value: float | None, digits: int, valid: bool = True) -> str:
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    return text if valid else f"{text} !"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def figure_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["proxy", *(spec.label for spec in FIGURES)]
    rows = []
    for peer in results["order"]:
        info = results["peers"][peer]
        if info["status"] != "measured":
            continue
        figs = results["figures"].get(peer, {})
        cells = [peer]
        for spec in FIGURES:
            fig = figs.get(spec.key, {})
            cells.append(fmt(fig.get("value"), spec.digits, fig.get("valid", True)))
        rows.append(cells)
    return header, rows


def ratio_rows(results: dict[str, Any], ref: str) -> tuple[list[str], list[list[str]]]:
    header = ["proxy", *(spec.label for spec in FIGURES)]
    rows = []
    for peer in results["order"]:
        if results["peers"][peer]["status"] != "measured":
            continue
        peer_ratios = results["ratios"].get(peer, {})
        rows.append([peer, *(fmt_ratio(peer_ratios.get(spec.key, {}).get(f"to_{ref}")) for spec in FIGURES)])
    return header, rows


def target_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["target", "lab", "reference", "ratio / error", "status", "note"]
    rows = []
    for t in results["targets"]:
        if "error_pct" in t:
            err = t["error_pct"]
            measure = "-" if err is None or math.isnan(err) else f"{err:+.2f}%"
            lab = fmt(t.get("lab"), 1) + " kbit/s"
        else:
            measure = fmt_ratio(t.get("ratio"))
            lab = fmt(t.get("lab"), 2)
        rows.append([t["text"], lab, fmt(t.get("peer"), 2), measure, t["status"].upper(), t.get("note", "")])
    return header, rows


def transpose(header: list[str], rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Figures as rows and peers as columns: narrower, so it fits an 80-column terminal."""
    columns = [header, *rows]
    out = [[c[i] for c in columns] for i in range(1, len(header))]
    return [c[0] for c in columns], [row for row in out if any(cell != "-" for cell in row[1:])]


def print_report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # a log file or a pipe gets 120 columns rather than rich's 80, so the peers fit side by side
    console = Console(width=None if sys.stdout.isatty() else 120)

    def table(title: str, header: list[str], rows: list[list[str]], status_col: int | None = None) -> None:
        t = Table(title=title, title_justify="left", show_lines=False, pad_edge=False)
        for i, name in enumerate(header):
            t.add_column(name, justify="left" if i == 0 or i == status_col else "right", overflow="fold")
        for row in rows:
            style = {"PASS": "green", "FAIL": "red", "SKIPPED": "yellow"}.get(row[status_col], "") if status_col else ""
            t.add_row(*row, style=style)
        console.print(t)

    m = results["machine"]
    console.print(f"[bold]proxy-lab bench[/] ({results['mode']}, {results['settings']['reps']} repetition(s), medians) "
                  f"on {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}", highlight=False)  # fmt: skip
    table("figures (! = a repetition failed its check)", *transpose(*figure_rows(results)))
    for ref in REFERENCES:
        if results["peers"].get(ref, {}).get("status") == "measured":
            table(f"ratio to {ref} (figure / {ref}'s)", *transpose(*ratio_rows(results, ref)))
    for peer in results["order"]:
        info = results["peers"][peer]
        if info["status"] != "measured":
            console.print(f"[yellow]skipped {peer}:[/] {info['note']}", highlight=False)
    throttle = results["throttle"]
    if throttle.get("runs"):
        table("throttle accuracy (lab proxy, measured at the receiver)", *throttle_rows(throttle))
    else:
        console.print(f"[yellow]throttle accuracy skipped:[/] {throttle.get('note', '')}", highlight=False)
    demo = results["demo"]
    if demo.get("seconds") is not None:
        console.print(f"make demo wall time: {demo['seconds']:.1f} s (exit code {demo['exit_code']})")
    else:
        console.print(f"[yellow]make demo wall time skipped:[/] {demo.get('skipped', '')}", highlight=False)
    header, rows = target_rows(results)
    table("speed targets", header[:-1], [r[:-1] for r in rows], status_col=4)
    for row in rows:
        if row[-1]:
            console.print(f"  {row[0]}: {row[-1]}", highlight=False)


def throttle_rows(throttle: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["setting kbit/s", "direction", "measured kbit/s", "error", "window s"]
    rows = [[f"{r['setting_kbps']:g}", r["direction"], fmt(r["measured_kbps"], 1),
             "-" if r["error_pct"] is None or math.isnan(r["error_pct"]) else f"{r['error_pct']:+.2f}%",
             fmt(r["window_s"], 2)] for r in throttle["runs"]]  # fmt: skip
    return header, rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    parts = [
        f"Run {results['started']} ({results['mode']}, {results['settings']['reps']} repetition(s), medians; "
        f"{results['duration_s']:.0f} s in all) on {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}, uvloop {m['uvloop'] or 'absent'}, commit {results.get('commit') or '?'}; "
        f"1-minute load average {m['loadavg_at_start'][0]:.2f} at the start and {m.get('loadavg_at_end', [0.0])[0]:.2f} at the end"
        + (" (above the core count: other work competed with the run, so absolute figures are low and noisy)"
           if max(m["loadavg_at_start"][0], m.get("loadavg_at_end", [0.0])[0]) > (m["cores"] or 1) else "") + ".",
        "",
        "Figures (`!` = a repetition failed its check):",
        "",
        markdown_table(*figure_rows(results)),
    ]
    for ref in REFERENCES:
        if results["peers"].get(ref, {}).get("status") == "measured":
            parts += ["", f"Ratio to {ref}:", "", markdown_table(*ratio_rows(results, ref))]
    peers = [[p, info["status"], info.get("version", ""), info.get("settings", "") if info["status"] == "measured"
              else info.get("note", "").splitlines()[0] if info.get("note") else ""]
             for p, info in results["peers"].items()]  # fmt: skip
    parts += ["", "Peers:", "", markdown_table(["peer", "status", "version", "settings or reason"], peers)]
    throttle = results["throttle"]
    if throttle.get("runs"):
        parts += ["", "Throttle accuracy (lab proxy, at the receiver):", "", markdown_table(*throttle_rows(throttle))]
    else:
        parts += ["", f"Throttle accuracy: skipped ({throttle.get('note', '')})."]
    demo = results["demo"]
    if demo.get("seconds") is not None:
        parts += ["", f"`make demo` wall time: {demo['seconds']:.1f} s (exit code {demo['exit_code']})."]
    else:
        parts += ["", f"`make demo` wall time: skipped ({demo.get('skipped', '')})."]
    parts += ["", "Speed targets:", "", markdown_table(*target_rows(results))]
    return "\n".join(parts) + "\n"


def _strict_json(value: Any) -> Any:
    """NaN and infinities become null: results.json stays valid JSON for every parser."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(v) for v in value]
    return value


def write_json(results: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(_strict_json(results), indent=2, allow_nan=False, default=str)
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


RESULTS_BEGIN = "<!-- bench results: begin (written by `python -m bench.run --update-docs`) -->"
RESULTS_END = "<!-- bench results: end -->"


def update_docs(path: Path, markdown: str) -> None:
    """Replace the text between the results markers of `path` (appended if the markers are absent)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{RESULTS_BEGIN}\n{markdown.rstrip()}\n{RESULTS_END}"
    if RESULTS_BEGIN in text and RESULTS_END in text:
        head, _, rest = text.partition(RESULTS_BEGIN)
        _, _, tail = rest.partition(RESULTS_END)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
