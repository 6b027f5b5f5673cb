"""The served lab's web app (FastAPI on uvicorn): the fault API shaped like toxiproxy's, the status,
probes on demand, the event stream, and the dashboard page. OpenAPI at /api/openapi.json.

Every /api route goes through `guard`: a request that carries an `Origin` must come from the page's
own origin (no cross-site request from a browser on the same machine), and when a token is set every
call needs `Authorization: Bearer <token>`. Without a token (loopback only) the `Host` must be an
IP literal or `localhost`, so a DNS-rebound name cannot pass for the page's origin.
Errors are JSON, `{"error": "...", "field": "..." | null}`: 400 malformed JSON, 401 token, 403
origin, 404 unknown fault, preset or id, 422 settings refused by the fault's own validation.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from proxy_lab.outcomes import Outcome
from proxy_lab.report.html_report import FAMILY, SPRITE, sym
from proxy_lab.resolver import is_ip
from proxy_lab.serve.inputs import fault_catalog
from proxy_lab.serve.switchboard import FaultRejected, UnknownFault

if TYPE_CHECKING:
    from proxy_lab.serve.served import ServedLab

DASHBOARD = Path(__file__).resolve().parent.parent / "data" / "dashboard.html"
# The page fetches nothing but its own API; only its inline style and script run.
CSP = (
    "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class FaultSpec(BaseModel):
    """A fault to put in force: a name from `GET /api/catalog/faults` and its settings."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="fault name, e.g. tls_inspect")
    settings: dict[str, Any] = Field(default_factory=dict, description="settings, checked by the fault itself")


class FaultPatch(BaseModel):
    """Settings merged into a fault in force (the fault is rebuilt and validated again)."""

    model_config = ConfigDict(extra="forbid")
    settings: dict[str, Any] = Field(description="settings to change; the others keep their values")


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


def _host_only(host_header: str) -> str:
    host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    return host.strip("[]")


def create_app(served: ServedLab, *, token: str | None = None) -> FastAPI:
    app = FastAPI(
        title="proxy-lab served lab",
        summary="Switch a running lab proxy's faults and watch the simulated SendPro meter's services.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,  # the interactive docs pages load assets from a CDN: not here
        redoc_url=None,
    )

    def guard(request: Request) -> None:
        host = request.headers.get("host", "")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            raise ApiError(403, f"Origin {origin!r} is not this lab's page (http://{host}): cross-site requests are refused")
        if token is None:
            name = _host_only(host)
            if name != "localhost" and not is_ip(name):
                raise ApiError(403, f"Host {host!r}: the API answers to an IP address or localhost only")
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "this lab needs its token: send Authorization: Bearer <--ui-token>")
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "wrong token (Authorization: Bearer ...): use the lab's --ui-token")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="proxy-lab"'} if exc.status == 401 else None
        return _error(exc.status, str(exc), exc.field, headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if any(e.get("type") == "json_invalid" for e in errors):
            reason = next(e for e in errors if e.get("type") == "json_invalid").get("ctx", {}).get("error", "")
            return _error(400, f"malformed JSON in the request body: {reason}".rstrip(": "))
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        where = ".".join(loc) or None
        return _error(422, f"{where or 'body'}: {first.get('msg', 'invalid')}", where)

    api = APIRouter(prefix="/api", dependencies=[Depends(guard)])

    @api.get("/status", summary="per service: latest outcome, since when, evidence and remedy; the proxy; the faults")
    async def status() -> dict[str, Any]:
        return served.status()

    @api.get("/catalog/faults", summary="every fault the lab knows (as `proxy-lab faults`), with its settings "
             "and the input each calls for (`kind`, `items`, `choices`, `optional`: see proxy_lab/serve/inputs.py)")  # fmt: skip
    async def catalog() -> list[dict[str, Any]]:
        return fault_catalog()

    @api.get("/faults", summary="the faults in force, in the order their hooks run")
    async def faults() -> list[dict[str, Any]]:
        return served.faults()

    @api.post("/faults", status_code=201, summary="put a fault in force; new tunnels see it at once")
    async def add_fault(spec: FaultSpec, cut: bool = Query(False, description="also cut the tunnels open now")) -> dict[str, Any]:
        entry = await _checked(served.add_fault(spec.name, spec.settings, cut=cut))
        return entry.to_dict()

    @api.patch("/faults/{fault_id}", summary="change a fault's settings (merged, then validated by the fault)")
    async def patch_fault(fault_id: str, patch: FaultPatch, cut: bool = Query(False)) -> dict[str, Any]:
        entry = await _checked(served.update_fault(fault_id, patch.settings, cut=cut))
        return entry.to_dict()

    @api.delete("/faults/{fault_id}", summary="take a fault out of force")
    async def delete_fault(fault_id: str, cut: bool = Query(False)) -> dict[str, Any]:
        entry = await _checked(served.remove_fault(fault_id, cut=cut))
        return {"removed": entry.to_dict(), "faults": served.faults()}

    @api.get("/presets", summary="the demo's presets, each a list of faults")
    async def list_presets() -> list[dict[str, Any]]:
        return [p.to_dict() for p in served.presets.values()]

    @api.post("/presets/{name}", summary="replace the faults in force by a preset's")
    async def apply_preset(name: str, cut: bool = Query(False)) -> dict[str, Any]:
        entries = await _checked(served.apply_preset(name, cut=cut))
        return {"preset": name, "faults": [e.to_dict() for e in entries]}

    @api.post("/probe", summary="run the meter now and answer with what it saw")
    async def probe() -> dict[str, Any]:
        assert served.meter is not None
        event = await served.meter.probe("api")
        return {"run": event.run, "changed": list(event.changed), "elapsed_s": event.elapsed_s,
                "services": list(event.services)}  # fmt: skip

    @api.get("/events", summary="Server-Sent Events: `fault` and `probe` events, each numbered (`id`)",
             response_class=StreamingResponse)  # fmt: skip
    async def events(request: Request, since: int | None = Query(None, description="replay kept events after this id")) -> StreamingResponse:
        last = request.headers.get("last-event-id")
        if since is None and last and last.isdigit():
            since = int(last)
        return StreamingResponse(
            served.events.stream(since), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    app.include_router(api)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        page = DASHBOARD.read_text(encoding="utf-8")
        page = (
            page.replace("__TOKEN_REQUIRED__", "true" if token else "false")
            .replace("__SPRITE__", SPRITE)
            .replace("__FAMILY__", json.dumps({o.value: f for o, f in FAMILY.items()}))
            .replace("__ICONS__", json.dumps({o.symbol: sym(o.symbol) for o in Outcome}))
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})  # fmt: skip

    return app


async def _checked(coro: Any) -> Any:
    """Await a fault change, turning the switchboard's refusals into API errors."""
    try:
        return await coro
    except UnknownFault as exc:
        raise ApiError(404, str(exc)) from exc
    except FaultRejected as exc:
        raise ApiError(422, str(exc), f"settings.{exc.field}" if exc.field else "settings") from exc
