"""`LabClient`: a small synchronous client of a served lab's API (`proxy-lab serve`), standard library only.

    lab = LabClient("http://127.0.0.1:8080")
    with lab.fault("tls_inspect"):
        lab.wait_for("funds", "tls_intercepted")
    lab.wait_for("funds", "pass")

Every error answer raises `LabApiError` with the status, the API's message and the setting it names.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["LabApiError", "LabClient"]


class LabApiError(RuntimeError):
    """The served lab answered with an error: `status`, its message, and `field` (a setting) or None."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.field = field


class LabClient:
    """The fault API of one served lab at `url` (the --ui address), with its token if it has one."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"LabClient url {url!r}: expected http://HOST:PORT (the lab's --ui address)")
        self.url = url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port
        self.token = token
        self.timeout_s = timeout_s

    # -- plumbing -------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None) -> Any:
        """One API call; the decoded JSON answer, or LabApiError."""
        if query:
            path += "?" + "&".join(f"{k}={quote(str(v).lower() if isinstance(v, bool) else str(v))}" for k, v in query.items())
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = None
        if resp.status >= 400:
            message = answer.get("error", "") if isinstance(answer, dict) else raw[:200].decode(errors="replace")
            field = answer.get("field") if isinstance(answer, dict) else None
            raise LabApiError(resp.status, message or resp.reason, field)
        return answer

    # -- the API --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/api/status")
        return result

    def outcomes(self) -> dict[str, str | None]:
        """Each service's latest outcome (None before the first run)."""
        return {s["name"]: s["outcome"] for s in self.status()["services"]}

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/api/faults")
        return result

    def add_fault(self, name: str, settings: dict[str, Any] | None = None, *, cut: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/api/faults", {"name": name, "settings": settings or {}}, query={"cut": cut})
        return result

    def update_fault(self, fault_id: str, settings: dict[str, Any], *, cut: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", f"/api/faults/{quote(fault_id)}", {"settings": settings}, query={"cut": cut})
        return result

    def remove_fault(self, fault_id: str, *, cut: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/faults/{quote(fault_id)}", query={"cut": cut})
        return result

    def clear_faults(self, *, cut: bool = False) -> None:
        """Take every fault out of force (the `compliant` preset)."""
        self.apply_preset("compliant", cut=cut)

    def apply_preset(self, name: str, *, cut: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/presets/{quote(name)}", query={"cut": cut})
        return result

    def probe(self) -> dict[str, Any]:
        """Run the meter now; its run number and every service's status after it."""
        result: dict[str, Any] = self.request("POST", "/api/probe")
        return result

    @contextmanager
    def fault(self, name: str, settings: dict[str, Any] | None = None, *, cut: bool = False) -> Iterator[dict[str, Any]]:
        """A fault in force for the `with` block, removed after it (even when the block fails)."""
        entry = self.add_fault(name, settings, cut=cut)
        try:
            yield entry
        finally:
            try:
                self.remove_fault(entry["id"], cut=cut)
            except LabApiError as exc:
                if exc.status != 404:  # already removed by the block itself
                    raise

    def wait_for(self, service: str, outcome: str, *, timeout_s: float = 30.0, poll_s: float = 0.25) -> dict[str, Any]:
        """Poll the status until `service` shows `outcome`; its status then, or TimeoutError saying what it showed."""
        deadline = time.monotonic() + timeout_s
        seen: str | None = None
        while True:
            for s in self.status()["services"]:
                if s["name"] == service:
                    seen = s["outcome"]
                    if seen == outcome:
                        return dict(s)
                    break
            else:
                raise LabApiError(404, f"no service {service!r} in the lab's model")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{service} did not show {outcome} within {timeout_s:g} s (last seen: {seen})")
            time.sleep(poll_s)

    def events(self, *, since: int | None = None, timeout_s: float = 30.0) -> Iterator[dict[str, Any]]:
        """The event stream (`GET /api/events`) as dicts, each with `seq`, `at` and `kind`
        (`fault` or `probe`); ends when the lab stops, raises TimeoutError after `timeout_s` of silence."""
        path = "/api/events" + (f"?since={since}" if since is not None else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        try:
            conn.request("GET", path, headers={**self._headers(), "Accept": "text/event-stream"})
            resp = conn.getresponse()
            if resp.status >= 400:
                raw = resp.read()
                answer = json.loads(raw) if raw.startswith(b"{") else {}
                raise LabApiError(resp.status, answer.get("error", resp.reason), answer.get("field"))
            data: list[str] = []
            while True:
                line = resp.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if text.startswith("data:"):
                    data.append(text[5:].lstrip())
                elif not text and data:
                    yield json.loads("\n".join(data))
                    data = []
        except TimeoutError as exc:
            raise TimeoutError(f"no event from {self.url} within {timeout_s:g} s") from exc
        finally:
            conn.close()
