"""Sans-IO reading of the first TLS bytes each way of a tunnel: the SNI, the version, the issuer.

Passive: the sniffers are fed copies of the chunks as they pass and never change them. From the
client's side the ClientHello's `server_name` (RFC 6066 §3); from the server's side the
ServerHello's version (RFC 5246 §7.4.1.3; RFC 8446 §4.2.1 `supported_versions` for TLS 1.3) and,
where it is still sent in the clear (TLS 1.2 and earlier, RFC 5246 §7.4.2), the Certificate
message's first certificate, whose issuer names who signed what the client was shown. In TLS 1.3
the Certificate is encrypted: the issuer is then not visible, and `issuer` stays empty.

Each sniffer stops (`done`) after at most `LIMIT` bytes or at the first thing that is not a TLS
handshake, so a bulk transfer costs nothing once the tunnel is under way.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

LIMIT = 64 * 1024  # bytes looked at each way
_HANDSHAKE = 22
_CLIENT_HELLO, _SERVER_HELLO, _CERTIFICATE = 1, 2, 11
_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}


@dataclass(frozen=True)
class ServerSeen:
    """What the server's first flight showed: its TLS version and, up to TLS 1.2, the issuer."""

    version: str = ""
    issuer: str = ""  # RFC 4514 string of the first certificate's issuer; "" when not visible
    subject: str = ""


class _Handshakes:
    """Reassembles handshake messages from the records of one direction (records may split them)."""

    def __init__(self) -> None:
        self.buf = bytearray()  # unparsed record bytes
        self.hs = bytearray()  # handshake-layer bytes
        self.seen = 0
        self.done = False

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The complete handshake messages (type, body) the new bytes finish."""
        if self.done:
            return []
        self.seen += len(data)
        self.buf += data
        if self.buf and self.buf[0] != _HANDSHAKE:
            self.done = True  # the first byte already says it is not a TLS handshake record
            return []
        while len(self.buf) >= 5:
            ctype, length = self.buf[0], int.from_bytes(self.buf[3:5], "big")
            if ctype != _HANDSHAKE or self.buf[1] != 3:
                self.done = True  # not (or no longer) a plain handshake record
                break
            if len(self.buf) < 5 + length:
                break
            self.hs += self.buf[5 : 5 + length]
            del self.buf[: 5 + length]
        out: list[tuple[int, bytes]] = []
        while len(self.hs) >= 4:
            mtype, mlen = self.hs[0], int.from_bytes(self.hs[1:4], "big")
            if len(self.hs) < 4 + mlen:
                break
            out.append((mtype, bytes(self.hs[4 : 4 + mlen])))
            del self.hs[: 4 + mlen]
        if self.seen >= LIMIT:
            self.done = True
        return out


class ClientHelloSniffer:
    """Feed the client's first bytes; `sni` is the ClientHello's host name once seen."""

    def __init__(self) -> None:
        self._hs = _Handshakes()
        self.sni = ""
        self.tls = False  # the client opened with a TLS ClientHello

    @property
    def done(self) -> bool:
        return self._hs.done

    def feed(self, data: bytes) -> None:
        for mtype, body in self._hs.feed(data):
            if mtype == _CLIENT_HELLO:
                self.tls = True
                self.sni = _server_name(body)
            self._hs.done = True
            return


class ServerHelloSniffer:
    """Feed the server's first bytes; `seen` holds the version and (TLS <= 1.2) the issuer."""

    def __init__(self) -> None:
        self._hs = _Handshakes()
        self.seen = ServerSeen()

    @property
    def done(self) -> bool:
        return self._hs.done

    def feed(self, data: bytes) -> None:
        for mtype, body in self._hs.feed(data):
            if mtype == _SERVER_HELLO:
                version = _server_version(body)
                self.seen = ServerSeen(version=version)
                if version == "TLS 1.3":  # the Certificate is encrypted from here on
                    self._hs.done = True
                    return
            elif mtype == _CERTIFICATE:
                issuer, subject = _first_certificate(body)
                self.seen = ServerSeen(self.seen.version, issuer, subject)
                self._hs.done = True
                return
            else:  # ServerKeyExchange, ServerHelloDone, ...: nothing more to learn
                self._hs.done = True
                return


def _server_name(hello: bytes) -> str:
    """RFC 6066 §3 `server_name` of a ClientHello body ("" when absent or malformed)."""
    try:
        i = 2 + 32  # legacy_version, random
        i += 1 + hello[i]  # session id
        i += 2 + int.from_bytes(hello[i : i + 2], "big")  # cipher suites
        i += 1 + hello[i]  # compression methods
        end = i + 2 + int.from_bytes(hello[i : i + 2], "big")
        i += 2
        while i + 4 <= min(end, len(hello)):
            etype, elen = int.from_bytes(hello[i : i + 2], "big"), int.from_bytes(hello[i + 2 : i + 4], "big")
            ext = hello[i + 4 : i + 4 + elen]
            if etype == 0 and len(ext) >= 5 and ext[2] == 0:  # server_name list, first entry host_name
                nlen = int.from_bytes(ext[3:5], "big")
                return ext[5 : 5 + nlen].decode("ascii", "replace").lower()
            i += 4 + elen
    except IndexError:
        return ""
    return ""


def _server_version(hello: bytes) -> str:
    """The negotiated version: `supported_versions` (RFC 8446 §4.2.1) when present, else legacy_version."""
    if len(hello) < 2:
        return ""
    version = int.from_bytes(hello[0:2], "big")
    try:
        i = 2 + 32
        i += 1 + hello[i]  # session id
        i += 2 + 1  # cipher suite, compression method
        end = i + 2 + int.from_bytes(hello[i : i + 2], "big")
        i += 2
        while i + 4 <= min(end, len(hello)):
            etype, elen = int.from_bytes(hello[i : i + 2], "big"), int.from_bytes(hello[i + 2 : i + 4], "big")
            if etype == 43 and elen == 2:
                version = int.from_bytes(hello[i + 4 : i + 6], "big")
            i += 4 + elen
    except IndexError:
        pass
    return _VERSIONS.get(version, f"0x{version:04x}")


def _first_certificate(body: bytes) -> tuple[str, str]:
    """(issuer, subject) of the first certificate of an RFC 5246 §7.4.2 Certificate message."""
    if len(body) < 6:
        return "", ""
    clen = int.from_bytes(body[3:6], "big")
    der = body[6 : 6 + clen]
    try:
        cert = x509.load_der_x509_certificate(der)
        return cert.issuer.rfc4514_string(), cert.subject.rfc4514_string()
    except ValueError:
        return "", ""
