"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromium-driver (never a downloaded browser or driver), and `make dashboard-screenshot`.

    python -m proxy_lab.serve.browser --output docs/dashboard.png

starts a served lab on loopback, puts SSL inspection in force, waits for the meter to see it, unfolds
that fault's settings, and writes a PNG of the page. Chromium runs headless with a throw-away profile, no background
networking, and a host resolver that resolves nothing (the dashboard is reached by IP address).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from proxy_lab.report.screenshot import SAFE_FLAGS, find_chromium

CHROMEDRIVER = "/usr/bin/chromedriver"


class BrowserMissing(RuntimeError):
    """Chromium, chromium-driver or selenium is not installed; the message says which."""


def find_chromedriver() -> str | None:
    configured = os.environ.get("PROXY_LAB_CHROMEDRIVER")
    if configured:
        return configured if Path(configured).exists() else None
    return CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")


def browser_missing() -> str | None:
    """Why the dashboard cannot be opened in a browser here, or None when it can."""
    if find_chromium() is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    if find_chromedriver() is None:
        return "Debian's chromium-driver is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(width: int = 1600, height: int = 1100) -> Iterator[Any]:
    """A Selenium WebDriver on headless Chromium; quits (browser and driver) on leaving."""
    why = browser_missing()
    if why:
        raise BrowserMissing(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download anything
    with tempfile.TemporaryDirectory(prefix="proxy-lab-dashboard-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(find_chromium())
        for flag in SAFE_FLAGS:
            if not flag.startswith("--host-resolver-rules"):
                options.add_argument(flag)
        # No name resolves; the dashboard is reached as 127.0.0.1, which needs no resolver.
        options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(options=options, service=Service(executable_path=find_chromedriver()))
        try:
            driver.set_page_load_timeout(60)
            driver.set_script_timeout(60)
            yield driver
        finally:
            driver.quit()


def wait_until(driver: Any, script: str, *, timeout_s: float = 30.0, what: str = "") -> Any:
    """Poll a JavaScript expression (`return ...`) in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what or script}: not true within {timeout_s:g} s (last: {value!r})")


def tile_outcome(driver: Any, service: str) -> str | None:
    """The outcome a service's tile shows ('' before the first run, None when there is no tile)."""
    value = driver.execute_script(
        "const t = document.getElementById(arguments[0]); return t ? t.dataset.outcome : null;", f"tile-{service}"
    )
    return None if value is None else str(value)


def wait_for_tile(driver: Any, service: str, outcome: str, *, timeout_s: float = 30.0) -> float:
    """Wait until the service's tile shows `outcome`; the seconds it took."""
    started = time.monotonic()
    seen = None
    while (waited := time.monotonic() - started) < timeout_s:
        seen = tile_outcome(driver, service)
        if seen == outcome:
            return waited
        time.sleep(0.05)
    raise TimeoutError(f"the {service} tile did not show {outcome} within {timeout_s:g} s (it shows {seen!r})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxy_lab.serve.browser",
        description="Write a PNG of the served lab's dashboard with SSL inspection in force (headless Chromium).",
    )
    parser.add_argument("--output", "-o", type=Path, default=Path("docs/dashboard.png"), metavar="PNG")
    parser.add_argument("--certs", type=Path, default=None, metavar="DIR", help="certificate directory (default: a temporary one)")
    args = parser.parse_args(argv)
    from proxy_lab.serve.served import ServeConfig
    from proxy_lab.serve.thread import ServedLabThread

    try:
        with tempfile.TemporaryDirectory(prefix="proxy-lab-certs-") as tmp:
            config = ServeConfig(interval_s=1.0, certs_dir=args.certs or Path(tmp))
            with ServedLabThread(config) as lab, chromium(1600, 1300) as driver:
                lab.client.apply_preset("ssl_inspection")
                lab.client.wait_for("funds", "tls_intercepted", timeout_s=60)
                driver.get(lab.ui_url)
                wait_for_tile(driver, "funds", "tls_intercepted", timeout_s=60)
                # The fault in force with its settings unfolded: one input per setting.
                driver.execute_script(
                    "document.getElementById('settings-tls_inspect').open = true;"
                    "const box = document.getElementById('faults'), panel = document.getElementById('fault-tls_inspect');"
                    "box.scrollTop += panel.getBoundingClientRect().bottom - box.getBoundingClientRect().bottom + 8;"
                )
                args.output.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(args.output))
    except (BrowserMissing, TimeoutError) as exc:
        print(f"proxy-lab: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
