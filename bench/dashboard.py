"""How soon the served lab's dashboard shows a change: `python -m bench.dashboard [--toggles 20]`.

A served lab on loopback and its dashboard in Debian's headless Chromium (Selenium, chromium-driver).
Each toggle puts SSL inspection in force through the API (LabClient, as any script would) or takes
it out, and measures, from just before the API call:
- *fault shown*: until the page's tls_inspect toggle shows the new state (the fault event reached
  the page over the event stream and was drawn);
- *verdict shown*: until the funds tile shows the meter's new verdict (tls_intercepted / pass),
  which also waits for the meter's next run (`--interval`, 1 s here) and the run itself.
The issue's target: a fault change visible within 2 s of the API call, p95 over 20 toggles.
Bounded: at most `--toggles` toggles, each waited for at most 60 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from proxy_lab.serve.browser import BrowserMissing, chromium, wait_for_tile, wait_until
from proxy_lab.serve.served import ServeConfig
from proxy_lab.serve.thread import ServedLabThread

TARGET_P95_S = 2.0
TOGGLE_SHOWN = "return document.getElementById('toggle-tls_inspect').checked === {want}"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def measure(toggles: int, interval_s: float) -> tuple[list[float], list[float]]:
    fault_shown: list[float] = []
    verdict_shown: list[float] = []
    with tempfile.TemporaryDirectory(prefix="proxy-lab-bench-") as tmp:
        config = ServeConfig(interval_s=interval_s, certs_dir=Path(tmp) / "certs")
        with ServedLabThread(config) as lab, chromium(1600, 1100) as driver:
            lab.client.wait_for("funds", "pass", timeout_s=60)
            driver.get(lab.ui_url)
            wait_for_tile(driver, "funds", "pass", timeout_s=60)
            fault_id = ""
            for i in range(toggles):
                on = i % 2 == 0
                started = time.monotonic()
                if on:
                    fault_id = lab.client.add_fault("tls_inspect")["id"]
                else:
                    lab.client.remove_fault(fault_id)
                wait_until(driver, TOGGLE_SHOWN.format(want="true" if on else "false"), timeout_s=60)
                fault_shown.append(time.monotonic() - started)
                wait_for_tile(driver, "funds", "tls_intercepted" if on else "pass", timeout_s=60)
                verdict_shown.append(time.monotonic() - started)
    return fault_shown, verdict_shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--toggles", type=int, default=20, help="fault changes to time (default 20)")
    parser.add_argument("--interval", type=float, default=1.0, help="the meter's interval in seconds (default 1)")
    args = parser.parse_args(argv)
    if not 2 <= args.toggles <= 200:
        print("bench.dashboard: --toggles: expected 2-200", file=sys.stderr)
        return 2
    try:
        fault_shown, verdict_shown = measure(args.toggles, args.interval)
    except BrowserMissing as exc:
        print(f"bench.dashboard: {exc}", file=sys.stderr)
        return 2
    print(f"{args.toggles} toggles of tls_inspect through the API, meter interval {args.interval:g} s\n")
    print("| from the API call until | median s | p95 s | max s | target |")
    print("|---|---|---|---|---|")
    ok = p95(fault_shown) <= TARGET_P95_S
    print(f"| the page shows the fault change | {statistics.median(fault_shown):.3f} | {p95(fault_shown):.3f} | "
          f"{max(fault_shown):.3f} | p95 <= {TARGET_P95_S:g} s: {'PASS' if ok else 'FAIL'} |")  # fmt: skip
    print(f"| the funds tile shows the meter's verdict | {statistics.median(verdict_shown):.3f} | "
          f"{p95(verdict_shown):.3f} | {max(verdict_shown):.3f} | (includes waiting for the next run) |")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
