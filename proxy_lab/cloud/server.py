"""The cloud's HTTP/1.1 origin server on asyncio: one Protocol per connection, plain or TLS.

Bytes go into the connection's sans-IO `HttpWire` (h11); each complete request is answered by
`CloudApp.handle` and written back in order. Keep-alive is allowed (HTTP/1.1 default), and a
request with `Connection: close`, a framing error or a `CloseWithoutAnswer` ends the connection.
"""

from __future__ import annotations

import email.utils
import logging
import time

from proxy_lab.cloud.conn import Connections, StreamConnection
from proxy_lab.cloud.httpwire import CloseWithoutAnswer, HttpWire
from proxy_lab.cloud.routes import CloudApp
from proxy_lab.cloud.tls import SniContexts
from proxy_lab.errors import RemoteProtocolError

log = logging.getLogger("proxy_lab.cloud")

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """RFC 9110 §6.6.1 Date (IMF-fixdate), recomputed at most once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


class HttpConnection(StreamConnection):
    """One client connection to the HTTP ("http") or HTTPS ("https") listener."""

    def __init__(
        self,
        app: CloudApp,
        kind: str,
        registry: Connections,
        idle_timeout_s: float,
        tls: SniContexts | None = None,
    ) -> None:
        super().__init__(registry, idle_timeout_s)
        self.app = app
        self.kind = kind
        self.tls = tls
        self.sni: str | None = None
        self.wire = HttpWire()

    def connection_made(self, transport: object) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.app.state.connections[self.kind] += 1
        if self.tls is not None:
            self.sni = self.tls.host_for(self.extra("ssl_object"))

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.touch()
        self.wire.feed(data)
        while not self.closing:
            try:
                request = self.wire.next_request()
            except RemoteProtocolError as exc:
                self._fail(exc.error_status_hint, str(exc))
                return
            if request is None:
                self.write(self.wire.take_expect_continue())
                return
            try:
                answer = self.app.handle(self.kind, request, self.sni)
            except Exception as exc:  # a bug of ours: answer 500 rather than hang the client
                log.exception("cloud: %s %s on %s failed", request.method, request.target, self.kind)
                self._fail(500, f"cloud error: {type(exc).__name__}: {exc}")
                return
            if isinstance(answer, CloseWithoutAnswer):
                log.debug("cloud: closing without an answer: %s", answer.reason)
                self.close()
                return
            self.write(self.wire.respond(answer, date=http_date()))
            if self.wire.must_close:
                self.close()

    def eof_received(self) -> bool | None:
        # A half-close before a complete request ends the connection; answers already written
        # are flushed by close().
        self.close()
        return None

    def on_idle(self) -> None:
        if self.wire.in_request:
            # RFC 9110 §15.5.9: 408 when the server "did not receive a complete request message
            # within the time that it was prepared to wait".
            self._fail(408, f"no complete request within {self.idle_timeout_s:g} s")
        else:
            self.close()

    def _fail(self, status: int, reason: str) -> None:
        self.write(self.wire.refuse(status, reason, date=http_date()))
        self.close()
