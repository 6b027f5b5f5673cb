"""The cloud's HTTP routes: docs/cloud-protocol.md's table, built per host from the Catalog.

`CloudApp.handle(kind, request, sni_host)` is a plain function of a complete request (no I/O):
it picks the route by listener kind ("http" or "https"), host and path, checks the method and
the body, updates `CloudState`, and returns a `Response` or `CloseWithoutAnswer`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from proxy_lab.catalog import Catalog
from proxy_lab.cloud.files import FileStore
from proxy_lab.cloud.httpwire import CloseWithoutAnswer, Request, Response, text_response
from proxy_lab.cloud.state import CloudState
from proxy_lab.errors import ConfigError
from proxy_lab.protocol import messages as msg

Answer = Response | CloseWithoutAnswer
Handler = Callable[[Request, str], Answer]

XML = "application/xml; charset=utf-8"
HTML = "text/html; charset=utf-8"
OCTETS = "application/octet-stream"
# The upload sink: on every download host, `POST /upload` with any body is read, discarded and
# answered `200 text/plain` `SINK OK bytes=<n>`, so the device can time an upload (the guide's
# floor is "384 kbps (upstream and downstream)"). Bodies up to the wire's 1 MiB limit.
SINK_PATH = "/upload"


def sink_answer(n: int) -> bytes:
    """The sink's answer to a POST of `n` body bytes."""
    return f"SINK OK bytes={n}".encode()

# Exchanges the cloud answers over HTTP; the others are raw TCP or DNS.
HTTP_EXCHANGES = frozenset(
    {
        "authenticate", "refill", "audit", "psd_config", "transactions", "download_index", "download", "ota",
        "get", "accounting", "help_page", "health_upload", "generate_204", "dyngate_in", "dyngate_out",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Route:
    exchange: str
    methods: tuple[str, ...]  # HEAD is implied wherever GET is allowed (RFC 9110 §9.3.2)
    handler: Handler

    def allows(self, method: str) -> bool:
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)

    @property
    def allow_header(self) -> str:
        methods = list(self.methods) + (["HEAD"] if "GET" in self.methods else [])
        return ", ".join(methods)


def _is_xml(request: Request) -> bool:
    ctype = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
    return ctype in ("application/xml", "text/xml")


class CloudApp:
    """The route table of every HTTP(S) host of the catalog, and the handlers behind it."""

    def __init__(self, catalog: Catalog, state: CloudState, files: FileStore) -> None:
        self.state = state
        self.files = files
        self._sessions = itertools.count(1)
        self.table: dict[tuple[str, str], dict[str, Route]] = {}
        for ep in (e for s in catalog.services.values() for e in s.endpoints):
            if ep.exchange not in HTTP_EXCHANGES or ep.transport not in ("http", "tls"):
                continue
            kind = "https" if ep.transport == "tls" else "http"
            routes = self.table.setdefault((kind, ep.host), {})
            for path, route in self._routes_for(ep.exchange, ep.path.split("?", 1)[0]).items():
                old = routes.get(path)
                if old is not None and old.exchange != route.exchange:
                    raise ConfigError(
                        f"catalog: {kind}://{ep.host}{path} is both {old.exchange!r} and {route.exchange!r}"
                    )
                routes[path] = route

    def hosts(self, kind: str) -> list[str]:
        return sorted(h for k, h in self.table if k == kind)

    # -- dispatch -------------------------------------------------------------------------------
    def handle(self, kind: str, request: Request, sni_host: str | None = None) -> Answer:
        """Answer one request that arrived on listener `kind`; `sni_host` is the TLS connection's host."""
        if kind == "https" and sni_host is None:
            return text_response(
                421,
                "this TLS connection named no catalog host (SNI missing or unknown): it was given the default "
                "certificate for unknown.lab.invalid and is served nothing",
            )
        host = request.host or sni_host
        if host is None:
            return text_response(400, "request names no host (no Host header and no absolute-form target)")
        if sni_host is not None and host != sni_host:
            # RFC 9110 §15.5.20: 421 for a request "directed at a server that is unable or
            # unwilling to produce an authoritative response for the target URI".
            return text_response(421, f"Host {host!r} differs from the TLS server name {sni_host!r}")
        self.state.requests[host] += 1
        routes = self.table.get((kind, host))
        if routes is None:
            served = self.hosts(kind)
            shown = ", ".join(served[:12]) + (f" and {len(served) - 12} more" if len(served) > 12 else "")
            return text_response(404, f"host {host!r} is not served over {kind}; served: {shown}")
        route = routes.get(request.path)
        if route is None:
            return text_response(
                404, f"no {request.path!r} on {kind}://{host}; paths served: {', '.join(sorted(routes))}"
            )
        if not route.allows(request.method):
            return text_response(
                405,
                f"{request.method} is not allowed on {kind}://{host}{request.path}; allowed: {route.allow_header}",
                headers=(("Allow", route.allow_header),),
            )
        return route.handler(request, host)

    # -- route table ----------------------------------------------------------------------------
    def _routes_for(self, exchange: str, path: str) -> dict[str, Route]:
        base = path.rstrip("/")
        if exchange in ("download", "ota"):
            keys = (
                [msg.file_path(n) for n in msg.DOWNLOAD_FILES] if exchange == "download" else [msg.OTA_PATH]
            )
            routes: dict[str, Route] = {}
            for key in keys:
                routes[base + key] = Route(exchange, ("GET",), self._file_handler(key, signature=False))
                routes[msg.signature_path(base + key)] = Route(
                    exchange, ("GET",), self._file_handler(key, signature=True)
                )
            if exchange == "download":
                routes[base + SINK_PATH] = Route("upload_sink", ("POST",), self._sink)
            return routes
        handlers: dict[str, tuple[str, Handler]] = {
            "authenticate": ("POST", self._authenticate),
            "refill": ("POST", self._refill),
            "audit": ("POST", self._audit),
            "psd_config": ("POST", self._psd_config),
            "transactions": ("POST", self._transactions),
            "accounting": ("POST", self._accounting),
            "health_upload": ("POST", self._health),
            "dyngate_out": ("POST", self._dyngate_out),
            "download_index": ("GET", self._download_index),
            "get": ("GET", self._page),
            "help_page": ("GET", self._help),
            "generate_204": ("GET", self._generate_204),
            "dyngate_in": ("GET", self._dyngate_in),
        }
        method, handler = handlers[exchange]
        return {path: Route(exchange, (method,), handler)}

    # -- XML exchanges --------------------------------------------------------------------------
    def _xml(self, request: Request, parse: Callable[[bytes], dict[str, str]]) -> dict[str, str] | Response:
        if not _is_xml(request):
            return text_response(
                415,
                f"Content-Type {request.header('content-type')!r} is not application/xml; expected an XML body",
            )
        try:
            return parse(request.body)
        except ValueError as exc:
            return text_response(400, f"bad XML request: {exc}")

    def _authenticate(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_auth_request)
        if isinstance(got, Response):
            return got
        session = f"S{next(self._sessions):08d}"
        self.state.sessions[session] = got["meter"]
        return Response(200, msg.auth_response(got["meter"], session), XML)

    def _refill(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_refill_request)
        if isinstance(got, Response):
            return got
        self.state.uploads["refill"] += 1
        return Response(200, msg.refill_response(got["meter"], got["amount"]), XML)

    def _audit(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_audit_request)
        if isinstance(got, Response):
            return got
        self.state.uploads["audit"] += 1
        return Response(200, msg.audit_response(got["meter"]), XML)

    def _psd_config(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_psd_config_request)
        if isinstance(got, Response):
            return got
        body = msg.psd_config(got["meter"], "GB", currency="GBP", max_refill="1000.00", psd="PSD-LAB-1")
        return Response(200, body, XML)

    def _accounting(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_accounting_request)
        if isinstance(got, Response):
            return got
        return Response(200, msg.accounting_response(got["meter"]), XML)

    def _health(self, request: Request, host: str) -> Answer:
        got = self._xml(request, msg.parse_health_data)
        if isinstance(got, Response):
            return got
        self.state.uploads["health_upload"] += 1
        return Response(200, msg.health_receipt(got["meter"]), XML)

    def _transactions(self, request: Request, host: str) -> Answer:
        if not _is_xml(request):
            return text_response(
                415, f"Content-Type {request.header('content-type')!r} is not application/xml"
            )
        try:
            meter, records = msg.parse_transaction_upload(request.body)
        except ValueError as exc:
            return text_response(400, f"bad XML request: {exc}")
        ids = self.state.record_transactions([r.id for r in records])
        self.state.uploads["transactions"] += 1
        if self.state.drop_receipts:
            return CloseWithoutAnswer(f"drop_receipts: {len(ids)} transaction id(s) stored, receipt withheld")
        return Response(200, msg.transaction_receipt(meter, ids), XML)

    # -- downloads ------------------------------------------------------------------------------
    def _download_index(self, request: Request, host: str) -> Answer:
        return Response(200, msg.download_index(self.files.index(self.state.download_bytes)), XML)

    def _file_handler(self, key: str, *, signature: bool) -> Handler:
        """The file served at `key` (a path of `download_paths()`), or its detached signature."""

        def serve(request: Request, host: str) -> Answer:
            signed = self.files.files(self.state.download_bytes)[key]
            if signature:
                return Response(200, signed.signature, OCTETS)
            return Response(200, signed.corrupt if self.state.corrupt_downloads else signed.data, OCTETS)

        return serve

    def _sink(self, request: Request, host: str) -> Answer:
        self.state.uploads["upload_sink"] += 1
        return Response(200, sink_answer(len(request.body)), "text/plain; charset=utf-8")

    # -- pages ----------------------------------------------------------------------------------
    def _page(self, request: Request, host: str) -> Answer:
        return Response(200, msg.host_page(host), HTML)

    def _help(self, request: Request, host: str) -> Answer:
        return Response(200, msg.help_page(), HTML)

    def _generate_204(self, request: Request, host: str) -> Answer:
        # Android's captive-portal probe succeeds on 204 only (CaptivePortalProbeResult.isSuccessful()
        # in AOSP's NetworkMonitor.java, frameworks/base services/core/.../server/connectivity/).
        return Response(204)

    # -- DynGate (TeamViewer's HTTP fallback) ---------------------------------------------------
    def _dyngate_params(self, request: Request, need: tuple[str, ...]) -> dict[str, str] | Response:
        try:
            query = parse_qs(request.query, keep_blank_values=True, strict_parsing=bool(request.query))
        except ValueError as exc:
            return text_response(400, f"malformed DynGate query {request.query[:80]!r}: {exc}")
        params = {k: v[0] for k, v in query.items()}
        missing = [k for k in need if k not in params]
        if missing:
            return text_response(400, f"DynGate query lacks {', '.join(missing)}; expected {'&'.join(need)}")
        if params["client"] != "DynGate":
            return text_response(400, f"client={params['client']!r}; expected client=DynGate")
        try:
            msg.dyngate_in_answer(params["s"])
        except ValueError as exc:
            return text_response(400, f"DynGate s: {exc}")
        return params

    def _dyngate_in(self, request: Request, host: str) -> Answer:
        params = self._dyngate_params(request, ("s", "id", "client"))
        if isinstance(params, Response):
            return params
        return Response(200, msg.dyngate_in_answer(params["s"]), "text/plain; charset=utf-8")

    def _dyngate_out(self, request: Request, host: str) -> Answer:
        params = self._dyngate_params(request, ("s", "client"))
        if isinstance(params, Response):
            return params
        return Response(
            200, msg.dyngate_out_answer(params["s"], len(request.body)), "text/plain; charset=utf-8"
        )
