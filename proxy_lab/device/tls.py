"""TLS inside the tunnel, driven by hand through `ssl.MemoryBIO` so the device sees every byte.

Owns `TlsStream`: the handshake with SNI, anchored in the PB root only (`PKI.device_context()`),
run over a `Wire` with `SSLContext.wrap_bio`. Doing it by hand rather than with `start_tls` lets the
device count bytes, tell a non-TLS answer from a cut handshake, and, when verification fails, still
read the chain it was shown (`SSLObject.get_unverified_chain()`, Python 3.13+) to name the issuer.
"""

from __future__ import annotations

import _ssl
import contextlib
import ssl
from collections.abc import Callable

from proxy_lab.device.classify import ProbeFailed, TlsFailed, TlsFailureKind, alert_name, classify
from proxy_lab.device.wire import READ_SIZE, Wire
from proxy_lab.outcomes import CertSummary

_ENCODING_DER = getattr(
    _ssl, "ENCODING_DER", 2
)  # `_ssl.Certificate.public_bytes(format)`; not re-exported by ssl
MAX_HANDSHAKE_ROUNDS = 64  # a TLS 1.2/1.3 handshake needs 2-4 round trips; this bounds the loop
MAX_READ_ROUNDS = 4096  # reads of raw records needed to produce one piece of plaintext

# OpenSSL's ssl_x509err2alert() (ssl/statem/statem_lib.c): the alert a client sends for a verify error.
_VERIFY_ALERTS = {
    2: "unknown_ca",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
    10: "certificate_expired",  # X509_V_ERR_CERT_HAS_EXPIRED
    18: "unknown_ca",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    19: "unknown_ca",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN
    20: "unknown_ca",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "unknown_ca",  # X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
    62: "bad_certificate",  # X509_V_ERR_HOSTNAME_MISMATCH
}


def shown_chain(sslobj: ssl.SSLObject, summarize: Callable[[bytes], CertSummary]) -> list[CertSummary]:
    """The chain the peer sent, verified or not. Python 3.13 returns DER `bytes` from SSLObject and
    `_ssl.Certificate` objects (with `public_bytes()`) from lower layers: both are handled. Before
    3.13 the method does not exist and the chain is not shown."""
    getter = getattr(sslobj, "get_unverified_chain", None)
    if getter is None:
        return []
    try:
        items = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    out = []
    for item in items:
        der = item if isinstance(item, bytes | bytearray) else item.public_bytes(_ENCODING_DER)
        out.append(summarize(bytes(der)))
    return out


def _looks_like_tls(data: bytes) -> bool:
    # RFC 8446 §5.1: a record starts with its ContentType (22 handshake, 21 alert) and then the
    # legacy_record_version 0x03 0xXX.
    return data[:1] in (b"\x16", b"\x15") and (len(data) < 2 or data[1:2] == b"\x03")


class TlsStream:
    """TLS over a Wire: `await handshake()`, then `read()`/`write()` plaintext like the Wire."""

    def __init__(self, wire: Wire, context: ssl.SSLContext, host: str) -> None:
        self.wire = wire
        self.host = host
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        self.chain: list[CertSummary] = []
        self._eof = False
        self._first = True

    # The Stream interface delegates naming to the wire underneath.
    @property
    def peer(self) -> str:
        return self.wire.peer

    @peer.setter
    def peer(self, value: str) -> None:
        self.wire.peer = value

    @property
    def during(self) -> str:
        return self.wire.during

    @during.setter
    def during(self, value: str) -> None:
        self.wire.during = value

    @property
    def expected(self) -> str:
        return self.wire.expected

    @expected.setter
    def expected(self, value: str) -> None:
        self.wire.expected = value

    @property
    def received(self) -> int:
        return self.wire.received

    def _fail(
        self, kind: TlsFailureKind, message: str, *, issuer: str = "", first: bytes = b""
    ) -> ProbeFailed:
        self.wire.transcript.note(f"TLS: {message}")
        self.wire.close()
        return ProbeFailed(
            classify(
                TlsFailed(self.wire.peer, self.host, kind, message, issuer_shown=issuer, first_bytes=first)
            )
        )

    async def _flush(self) -> None:
        if self.outgoing.pending:
            await self.wire.write(self.outgoing.read())

    async def _flush_quietly(self) -> None:
        """Send what OpenSSL queued (the alert after a failure); the peer may be gone already."""
        try:
            await self._flush()
        except ProbeFailed:
            pass

    def _note_chain(self) -> None:
        for i, cert in enumerate(self.chain[:4]):
            self.wire.transcript.note(f"TLS chain [{i}] {cert.subject} issued by {cert.issuer}")

    async def handshake(self, summarize: Callable[[bytes], CertSummary]) -> None:
        """Complete the handshake or end the probe with a TlsFailed observation."""
        evidence = self.wire.evidence
        self.wire.during = f"in the TLS handshake with {self.host}"
        self.wire.expected = "a TLS ServerHello and a certificate chain from the PB root"
        for _ in range(MAX_HANDSHAKE_ROUNDS):
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self.wire.read(READ_SIZE)
                if not data:
                    raise self._fail(
                        "eof",
                        f"{self.wire.peer} closed the connection after {self.wire.received} bytes, mid-handshake",
                    ) from None
                if self._first:
                    self._first = False
                    if not _looks_like_tls(data):
                        evidence.tls_error = "the answer to the ClientHello is not TLS"
                        raise self._fail(
                            "not_tls",
                            f"the answer to the ClientHello is not TLS: {data[:32]!r}",
                            first=data[:64],
                        ) from None
                self.incoming.write(data)
                continue
            except ssl.SSLCertVerificationError as exc:
                self.chain = shown_chain(self.obj, summarize)
                evidence.chain_shown = list(self.chain)
                evidence.tls_error = f"CERTIFICATE_VERIFY_FAILED: {exc.verify_message}"
                alert = _VERIFY_ALERTS.get(exc.verify_code, "bad_certificate")
                evidence.tls_alert = f"sent {alert}"
                await self._flush_quietly()
                issuer = self.chain[0].issuer if self.chain else ""
                self._note_chain()
                raise self._fail(
                    "verify", f"{evidence.tls_error}; device sent alert {alert}", issuer=issuer
                ) from exc
            except ssl.SSLError as exc:
                reason = exc.reason or str(exc)
                alert = alert_name(reason)
                evidence.tls_error = f"{reason}: {exc}"
                await self._flush_quietly()
                if alert:
                    evidence.tls_alert = f"received {alert}"
                    raise self._fail("alert", f"{self.wire.peer} sent TLS alert {alert}") from exc
                if isinstance(exc, ssl.SSLEOFError):
                    raise self._fail("eof", f"EOF in violation of the protocol ({reason})") from exc
                raise self._fail("error", reason) from exc
            await self._flush()
            self.chain = shown_chain(self.obj, summarize)
            evidence.chain_shown = list(self.chain)
            self._note_chain()
            cipher = self.obj.cipher()
            self.wire.transcript.note(
                f"TLS {self.obj.version()} {cipher[0] if cipher else ''} with {self.host}: chain verified to the PB root"
            )
            return
        raise self._fail("error", f"handshake not complete after {MAX_HANDSHAKE_ROUNDS} rounds")

    async def read(self, n: int = READ_SIZE) -> bytes:
        """Up to `n` bytes of plaintext; `b""` at close_notify or at EOF (a ragged close is noted)."""
        if self._eof:
            return b""
        for _ in range(MAX_READ_ROUNDS):
            try:
                data = self.obj.read(n)
            except ssl.SSLWantReadError:
                await self._flush()
                raw = await self.wire.read(READ_SIZE)
                if not raw:
                    self.incoming.write_eof()
                else:
                    self.incoming.write(raw)
                continue
            except ssl.SSLZeroReturnError:
                self._eof = True
                return b""
            except ssl.SSLEOFError:
                # The peer closed TCP without close_notify. Content-Length and chunked bodies carry
                # their own end; read-to-close callers accept it as CPython's suppress_ragged_eofs does.
                self.wire.transcript.note(f"TLS: EOF without close_notify from {self.wire.peer}")
                self._eof = True
                return b""
            except ssl.SSLError as exc:
                reason = exc.reason or str(exc)
                alert = alert_name(reason)
                if alert:
                    self.wire.evidence.tls_alert = f"received {alert}"
                    raise self._fail(
                        "alert", f"{self.wire.peer} sent TLS alert {alert} {self.wire.during}"
                    ) from exc
                raise self._fail("error", f"{reason} {self.wire.during}") from exc
            await self._flush()
            return data
        raise self._fail("error", f"no plaintext after {MAX_READ_ROUNDS} records {self.wire.during}")

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(len(data) // 1024 + 16):
            if not view:
                break
            try:
                n = self.obj.write(view)
            except ssl.SSLWantReadError:  # pragma: no cover - renegotiation is not used in TLS 1.2+/1.3 here
                raw = await self.wire.read(READ_SIZE)
                if not raw:
                    raise self.wire.cut_eof() from None
                self.incoming.write(raw)
                continue
            except ssl.SSLError as exc:
                raise self._fail("error", f"{exc.reason or exc} {self.wire.during}") from exc
            view = view[n:]
            await self._flush()

    def cut_eof(self, *, before_answer: bool = False) -> ProbeFailed:
        return self.wire.cut_eof(before_answer=before_answer)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.obj.unwrap()
        # close_notify, if OpenSSL queued one, goes out best effort without waiting.
        with contextlib.suppress(Exception):
            if self.outgoing.pending:
                self.wire.writer.write(self.outgoing.read())
        self.wire.close()
