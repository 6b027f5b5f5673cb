"""Headless Chromium for the HTML report: run it offline, take a screenshot, read the rendered page.

    python -m proxy_lab.report.screenshot --output report.png [--html report.html]

Without `--html` the demo is run first to produce the report (`proxy-lab demo --format html`).
Chromium is Debian's `chromium` (or `$PROXY_LAB_CHROMIUM`); Playwright's own browser download is not
used. It always runs headless, with a throw-away profile, no background networking, and a host
resolver that resolves nothing, and it only ever loads a `file://` path: the report needs no network.

`Page` drives the browser over the DevTools protocol on a pipe (`--remote-debugging-pipe`: commands
on fd 3, replies on fd 4, each a JSON message ended by a NUL byte), so a test can ask the rendered
page where an element is and whether it is visible, without opening any port.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

SAFE_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    # Belt and braces: no host name resolves, so nothing could be fetched even by mistake.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


class ChromiumError(RuntimeError):
    """Chromium is missing, failed, or did not answer in time; the message says which and why."""


def find_chromium() -> str | None:
    """Debian's chromium (or $PROXY_LAB_CHROMIUM), or None when it is not installed."""
    configured = os.environ.get("PROXY_LAB_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else shutil.which(configured)
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return None


def _binary() -> str:
    binary = find_chromium()
    if binary is None:
        raise ChromiumError("no Chromium found: install Debian's 'chromium' package or set PROXY_LAB_CHROMIUM")
    return binary


def file_url(path: Path) -> str:
    return path.resolve().as_uri()


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run Chromium in its own process group so a timeout ends the whole browser, not just the wrapper."""
    with tempfile.TemporaryDirectory(prefix="proxy-lab-chromium-") as profile:
        argv = [_binary(), *SAFE_FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc.pid)
            proc.communicate()
            raise ChromiumError(f"chromium did not finish within {timeout_s:.0f} s: {' '.join(args)}") from exc
        finally:
            _kill_group(proc.pid)  # helpers Chromium left behind in its group
    if proc.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-5:])
        raise ChromiumError(f"chromium exited with status {proc.returncode}: {tail}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def screenshot(html: Path, png: Path, *, width: int = 1600, height: int = 2400, timeout_s: float = 120) -> Path:
    """Render `html` at width x height CSS pixels and write the visible part as a PNG."""
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}", file_url(html)], timeout_s)
    if not png.is_file() or png.stat().st_size == 0:
        raise ChromiumError(f"chromium wrote no screenshot to {png}")
    return png


def dump_dom(html: Path, *, timeout_s: float = 120) -> str:
    """The page's DOM as serialised after its scripts ran (`--dump-dom`)."""
    return _run(["--virtual-time-budget=2000", "--dump-dom", file_url(html)], timeout_s).stdout


class Page:
    """One page in headless Chromium, driven over the DevTools protocol on a pipe (no port)."""

    def __init__(self, html: Path, *, width: int = 1600, height: int = 1200, timeout_s: float = 60) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="proxy-lab-chromium-")
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        cmd_r, self._cmd_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        binary = _binary()
        argv = [binary, *SAFE_FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, cmd_r, 3),
            (os.POSIX_SPAWN_DUP2, reply_w, 4),
        ]
        self.pid = os.posix_spawn(binary, argv, os.environ, file_actions=actions, setsid=True)
        os.close(cmd_r)
        os.close(reply_w)
        try:
            self._open(file_url(html), width, height)
        except BaseException:
            self.close()
            raise

    def _open(self, url: str, width: int, height: int) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        self.send("Page.navigate", {"url": url}, session=True)
        self._wait_event("Page.loadEventFired")

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError(f"{method}: {reply['error'].get('message', reply['error'])}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str) -> dict[str, Any]:
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            self._events.append(self._read())

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._reply_r], [], [], max(left, 0))
            if not ready:
                raise ChromiumError(f"chromium did not answer within {self.timeout_s:.0f} s")
            chunk = os.read(self._reply_r, 1 << 20)
            if not chunk:
                raise ChromiumError("chromium closed its DevTools pipe (it exited)")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in reply:
            raise ChromiumError(f"page script failed: {reply['exceptionDetails'].get('text', reply['exceptionDetails'])}")
        return reply["result"].get("value")

    def capture(self, png: Path, selector: str | None = None) -> Path:
        """A PNG of the element matching `selector` (the first), or of the whole page."""
        target = f"document.querySelector({json.dumps(selector)})" if selector else "document.documentElement"
        box = self.evaluate(
            f"(() => {{ const el = {target}; if (!el) return null; const r = el.getBoundingClientRect();"
            " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"
        )
        if not box or not box["width"] or not box["height"]:
            raise ChromiumError(f"nothing to capture: {selector or 'the page'} has no box")
        shot = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": {**box, "scale": 1}},
            session=True,
        )
        png.write_bytes(base64.b64decode(shot["data"]))
        return png

    def close(self) -> None:
        for fd in (self._cmd_w, self._reply_r):
            try:
                os.close(fd)
            except OSError:
                pass
        _kill_group(self.pid)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._profile.cleanup()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxy_lab.report.screenshot",
        description="Write a PNG of the HTML report as headless Chromium renders it (offline).",
    )
    parser.add_argument("--output", "-o", type=Path, default=Path("report.png"), metavar="PNG")
    parser.add_argument("--html", type=Path, metavar="PATH", help="the report to render (default: run the demo to make one)")
    parser.add_argument("--width", type=int, default=1600, help="window width in CSS pixels (default 1600)")
    parser.add_argument("--height", type=int, default=2400, help="window height in CSS pixels (default 2400)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="proxy-lab-report-") as tmp:
        html = args.html
        if html is None:
            html = Path(tmp) / "report.html"
            # The demo as its own process: reports sit below the commands and never import them.
            code = subprocess.run(
                [sys.executable, "-m", "proxy_lab.cli", "demo", "--format", "html", "--output", str(html)], check=False
            ).returncode
            if code not in (0, 1) or not html.is_file():
                print(f"proxy-lab: the demo did not write a report (exit status {code})", file=sys.stderr)
                return 2
        elif not html.is_file():
            print(f"proxy-lab: --html {html}: no such file", file=sys.stderr)
            return 2
        try:
            png = screenshot(html, args.output, width=args.width, height=args.height)
        except ChromiumError as exc:
            print(f"proxy-lab: {exc}", file=sys.stderr)
            return 2
    print(f"wrote {png} ({args.width}x{args.height}) from {args.html or 'the demo'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
