"""Sans-IO parsing of what a client sends the lab proxy before its tunnel: one CONNECT request head.

Pure functions over bytes: `parse_connect` returns `(ConnectRequest, bytes consumed)`, `None` when
more bytes are needed, or raises `RemoteProtocolError` whose `error_status_hint` is the status the
proxy answers with (400, 405, 414, 431, 505). Size limits come from `proxy_lab.http1.parse_head`.

Hand-written on purpose, not h11: the lab proxy's job is to say exactly what a broken or foreign
client sent (a TLS ClientHello or a SOCKS greeting where `CONNECT` belongs, a missing port, a body
on a CONNECT, an unbracketed IPv6 literal) and to answer it as a real proxy would. h11 reads bare
LF and CRLF line ends alike without saying which it saw (h11/_receivebuffer.py `blank_line_regex`),
rejects a foreign first line with one generic "illegal request line" before the proxy could name
it (h11/_readers.py `maybe_read_from_IDLE_client`), and checks no CONNECT authority-form target
(RFC 9112 §3.2.3), which is done here.
"""

from __future__ import annotations

import ipaddress
import re

from proxy_lab.errors import RemoteProtocolError
from proxy_lab.http1 import parse_head
from proxy_lab.proxy.events import ConnectRequest

# RFC 3986 §3.2.2 reg-name characters (unreserved / pct-encoded / sub-delims); no "@", no "/".
_REG_NAME = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=%]+$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/(\d)\.(\d)$")
# Control characters other than HTAB (parse_head has already refused NUL, CR and LF).
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# The head almost every client sends: `CONNECT reg-name:port HTTP/1.x`, CRLF line ends, fields whose
# names are tokens and whose values are visible ASCII. One match proves everything the general
# path checks for such a head (`_parse_plain`); anything else takes the general path.
_PLAIN_HEAD = re.compile(
    rb"CONNECT ([A-Za-z0-9\-._~!$&'()*+,;=%]+):([0-9]{1,5}) (HTTP/1\.[01])\r\n"
    rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[ \t]*(?:[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?)?[ \t]*\r\n)*)\r\n"
)
_FIELD = re.compile(r"([^:]+):[ \t]*(.*?)[ \t]*\r\n")  # over a block _PLAIN_HEAD matched
_BODY_FIELD = re.compile(r"(?:^|\n)(?:content-length|transfer-encoding):", re.IGNORECASE)

USAGE = "expected 'CONNECT host:port HTTP/1.1'"


def sniff_foreign(buf: bytes | bytearray) -> str | None:
    """Name the protocol a client is speaking when its first byte cannot start an HTTP request line.

    A device set up for an HTTPS or SOCKS proxy sends a TLS ClientHello (record type 0x16) or a
    SOCKS greeting (version byte 0x05 / 0x04) where `CONNECT` belongs; saying so in the log is the
    whole diagnosis.
    """
    if not buf:
        return None
    first = buf[0]
    if first == 0x16:
        return "a TLS ClientHello (first byte 0x16): is the client configured for an HTTPS proxy, or sending TLS without CONNECT?"
    if first == 0x05:
        return "a SOCKS5 greeting (first byte 0x05): the client speaks SOCKS, this proxy speaks HTTP CONNECT"
    if first == 0x04:
        return "a SOCKS4 request (first byte 0x04): the client speaks SOCKS, this proxy speaks HTTP CONNECT"
    if first < 0x20 or first > 0x7E:
        return f"binary data (first byte 0x{first:02x}), not an HTTP request line"
    return None


def target_hint(buf: bytes | bytearray) -> str:
    """The request-target of a request line the proxy refused, for its log: printable, at most 80
    characters, "" when there is none."""
    line = bytes(buf[:200]).split(b"\n", 1)[0].strip()
    parts = line.split(b" ")
    if len(parts) >= 2 and parts[1].isascii():
        text = parts[1].decode("ascii", "replace")
        return text[:80] if text.isprintable() else ""
    return ""


def parse_authority(target: str) -> tuple[str, int]:
    """Split an authority-form request-target (RFC 9112 §3.2.3: `uri-host ":" port`).

    IPv6 literals must be bracketed (`[::1]:443`); the host is returned lower-case, without brackets.
    """
    if "/" in target or "@" in target:
        raise RemoteProtocolError(f"request-target {target[:80]!r} is not authority-form host:port; {USAGE}")
    if target.startswith("["):
        end = target.find("]")
        if end < 0:
            raise RemoteProtocolError(f"request-target {target[:80]!r} opens '[' without closing it")
        host, rest = target[1:end], target[end + 1 :]
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise RemoteProtocolError(
                f"request-target {target[:80]!r}: {host!r} is not an IPv6 address"
            ) from exc
        if address.scope_id is not None:
            # RFC 3986 §3.2.2: IP-literal = "[" ( IPv6address / IPvFuture ) "]" has no zone id; a
            # zone names an interface of the client's host, meaningless to the proxy (RFC 6874 §1).
            raise RemoteProtocolError(
                f"request-target {target[:80]!r}: an IPv6 zone id (%{address.scope_id}) is not allowed"
            )
        if not rest.startswith(":"):
            raise RemoteProtocolError(
                f"request-target {target[:80]!r} has no port; RFC 9110 §9.3.6: 'There is no default port'"
            )
        port_text = rest[1:]
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep:
            # RFC 9110 §9.3.6: "There is no default port; a client MUST send the port number".
            raise RemoteProtocolError(
                f"request-target {target[:80]!r} has no port; RFC 9110 §9.3.6: 'There is no default port'"
            )
        if ":" in host:
            raise RemoteProtocolError(
                f"request-target {target[:80]!r}: an IPv6 literal must be bracketed, as [{host}]"
            )
        if not host or not _REG_NAME.match(host):
            raise RemoteProtocolError(f"request-target {target[:80]!r} has no valid host before the port")
    # RFC 9110 §9.3.6: "A server MUST reject a CONNECT request that targets an empty or invalid port
    # number, typically by responding with a 400 (Bad Request) status code."
    if not port_text or not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
        raise RemoteProtocolError(
            f"request-target {target[:80]!r} has an empty or invalid port {port_text[:10]!r}"
        )
    port = int(port_text)
    if not 0 < port < 65536:
        raise RemoteProtocolError(f"request-target {target[:80]!r}: port {port} is outside 1-65535")
    return host.lower(), port


def parse_connect(
    buf: bytes | bytearray, *, max_request_line: int = 8192, max_header_bytes: int = 32768
) -> tuple[ConnectRequest, int] | None:
    """Parse one CONNECT request head from the start of `buf`.

    Returns the request and the number of bytes it took (bytes after it belong to the tunnel), or
    `None` when the head is not complete yet.
    """
    plain = _parse_plain(buf, max_request_line, max_header_bytes)
    if plain is not None:
        return plain
    # RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line SHOULD ignore at
    # least one empty line (CRLF) received prior to the request-line."
    skip = 0
    while skip < len(buf) and skip < 64 and buf[skip] in (0x0D, 0x0A):
        skip += 1
    data = bytes(buf[skip:]) if skip else buf
    if not data:
        return None
    foreign = sniff_foreign(data)
    if foreign:
        raise RemoteProtocolError(f"client sent {foreign}")
    head = parse_head(data, max_start_line=max_request_line, max_head_bytes=max_header_bytes, request=True)
    if head is None:
        return None
    parts = head.start_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise RemoteProtocolError(f"malformed request line {head.start_line[:80]!r}; {USAGE}")
    method, target, version = parts
    version_match = _VERSION.match(version)
    if not version_match:
        raise RemoteProtocolError(f"request line {head.start_line[:80]!r} has no HTTP version; {USAGE}")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise RemoteProtocolError(f"{version} is not supported; {USAGE}", error_status_hint=505)
    if method == "PRI" and target == "*":
        raise RemoteProtocolError(
            "client sent the HTTP/2 connection preface; this proxy speaks HTTP/1.1 CONNECT"
        )
    if not _TOKEN.match(method):
        raise RemoteProtocolError(f"malformed method {method[:20]!r}; {USAGE}")
    if method != "CONNECT":
        # RFC 9110 §9.1: method names are case-sensitive, so `connect` is another method too.
        raise RemoteProtocolError(
            f"method {method} {target[:80]} is not allowed: this proxy only tunnels with CONNECT "
            "(absolute-form requests are not proxied)",
            error_status_hint=405,
        )
    host, port = parse_authority(target)
    # RFC 9110 §9.3.6: "A CONNECT request message does not have content."
    if head.get_all("Transfer-Encoding"):
        raise RemoteProtocolError(
            f"CONNECT {target} carries Transfer-Encoding; a CONNECT request has no content"
        )
    for value in head.get_all("Content-Length"):
        if not value.isascii() or not value.isdigit():
            raise RemoteProtocolError(f"CONNECT {target} has an invalid Content-Length {value[:20]!r}")
        if int(value) > 0:
            raise RemoteProtocolError(
                f"CONNECT {target} carries Content-Length {value}; a CONNECT request has no content"
            )
    # RFC 9110 §5.5: "Field values containing other CTL characters are also invalid". The message
    # names the field only: its value may be a credential (Proxy-Authorization) and goes to the log.
    for name, value in head.headers:
        if _CTL.search(value):
            raise RemoteProtocolError(f"CONNECT {target[:80]} has a control character in its {name[:40]} field")
    try:
        request = ConnectRequest(host, port, head.headers, version)
    except ValueError as exc:  # whatever else ConnectRequest refuses is the client's error too
        raise RemoteProtocolError(f"CONNECT {target[:80]} is not acceptable") from exc
    return request, skip + head.size


def _parse_plain(
    buf: bytes | bytearray, max_request_line: int, max_header_bytes: int
) -> tuple[ConnectRequest, int] | None:
    """`parse_connect` for the common head in one regex match; None sends the head down the general
    path (incomplete, unusual, or wrong: that path decides, and says what is wrong)."""
    m = _PLAIN_HEAD.match(buf)
    if m is None:
        return None
    size = m.end()
    if size > max_header_bytes or buf.find(b"\n") > max_request_line:
        return None  # the general path answers 414 / 431
    host, port_text, version, block = m.groups()
    port = int(port_text)
    if not 0 < port < 65536:
        return None
    headers: tuple[tuple[str, str], ...] = ()
    if block:
        text = block.decode("ascii")
        if _BODY_FIELD.search(text):
            return None  # the general path checks a CONNECT's (absent) content
        headers = tuple(_FIELD.findall(text))
    return ConnectRequest(host.decode("ascii").lower(), port, headers, version.decode("ascii")), size
