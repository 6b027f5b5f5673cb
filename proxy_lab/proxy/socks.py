"""Sans-IO SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), server side.

Parsers take the bytes received so far and return `(event, bytes consumed)`, `None` when more bytes
are needed, or raise `SocksProtocolError`, which carries the bytes a server sends before closing.
Builders return the server's answers. No sockets here: `proxy_lab.proxy.faults.socks_only` wires
them to a connection.

A client that is not speaking SOCKS5 (an HTTP client sending `CONNECT host:443 HTTP/1.1` to a
SOCKS port) is answered as MicroSocks answers it (rofl0r/microsocks sockssrv.c: `check_auth_method`
returns AM_INVALID for `buf[0] != 5`, then `send_auth_response(fd, 5, AM_INVALID)` writes
`05 FF` and the thread closes the socket). mitmproxy's socks5 mode closes without a byte
(proxy/layers/modes.py `Socks5Proxy.state_greet`: `socks_err` without a reply code). The
MicroSocks answer is emulated because two bytes that are not an HTTP status line are what an HTTP
client then reports ("malformed response"), which is what the device must detect.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from proxy_lab.errors import RemoteProtocolError

SOCKS_VERSION = 0x05
USERPASS_VERSION = 0x01  # RFC 1929 §2: "The VER field contains the current version of the subnegotiation, which is X'01'"


class Method(IntEnum):
    """RFC 1928 §3 authentication methods."""

    NO_AUTH = 0x00
    GSSAPI = 0x01
    USERNAME_PASSWORD = 0x02
    NO_ACCEPTABLE = 0xFF


class Command(IntEnum):
    """RFC 1928 §4 CMD."""

    CONNECT = 0x01
    BIND = 0x02
    UDP_ASSOCIATE = 0x03


class AddressType(IntEnum):
    """RFC 1928 §4 ATYP."""

    IPV4 = 0x01
    DOMAIN = 0x03
    IPV6 = 0x04


class Reply(IntEnum):
    """RFC 1928 §6 REP."""

    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


class SocksProtocolError(RemoteProtocolError):
    """The client broke SOCKS5; `answer` is what the server sends before it closes (may be empty)."""

    def __init__(self, msg: str, answer: bytes) -> None:
        super().__init__(msg, error_status_hint=400)
        self.answer = answer


# -- events ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Greeting:
    """The client's version identifier / method selection message (RFC 1928 §3)."""

    methods: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("Greeting: no methods")
        if any(not 0 <= m <= 255 for m in self.methods):
            raise ValueError(f"Greeting: methods {self.methods!r} outside 0-255")

    def offers(self, method: Method) -> bool:
        return method in self.methods


@dataclass(frozen=True)
class UserPass:
    """A username/password request (RFC 1929 §2); the password is never shown."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SocksRequest:
    """A SOCKS request (RFC 1928 §4): what the client wants done, and to which host and port."""

    command: int
    host: str  # lower-case name, or an IP literal without brackets
    port: int
    address_type: AddressType

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SocksRequest: empty host")
        if not 0 < self.port < 65536:
            raise ValueError(f"SocksRequest: port {self.port} outside 1-65535")

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# -- parsers --------------------------------------------------------------------------------------
def parse_greeting(buf: bytes | bytearray) -> tuple[Greeting, int] | None:
    """VER NMETHODS METHODS. A first byte other than 5 is answered `05 FF` (MicroSocks)."""
    if not buf:
        return None
    if buf[0] != SOCKS_VERSION:
        guess = " (an HTTP request?)" if bytes(buf[:3]).isupper() else ""
        raise SocksProtocolError(
            f"not SOCKS5: first byte 0x{buf[0]:02x}{guess}", method_selection(Method.NO_ACCEPTABLE)
        )
    if len(buf) < 2:
        return None
    count = buf[1]
    if count == 0:
        raise SocksProtocolError("SOCKS5 greeting offers no method", method_selection(Method.NO_ACCEPTABLE))
    if len(buf) < 2 + count:
        return None
    return Greeting(tuple(buf[2 : 2 + count])), 2 + count


def parse_userpass(buf: bytes | bytearray) -> tuple[UserPass, int] | None:
    """VER ULEN UNAME PLEN PASSWD (RFC 1929 §2); names and passwords are decoded as UTF-8."""
    if not buf:
        return None
    if buf[0] != USERPASS_VERSION:
        raise SocksProtocolError(
            f"username/password subnegotiation version 0x{buf[0]:02x}, expected 0x01", userpass_status(False)
        )
    if len(buf) < 2:
        return None
    ulen = buf[1]
    if len(buf) < 3 + ulen:
        return None
    plen = buf[2 + ulen]
    end = 3 + ulen + plen
    if len(buf) < end:
        return None
    try:
        user = bytes(buf[2 : 2 + ulen]).decode("utf-8")
        password = bytes(buf[3 + ulen : end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SocksProtocolError("user name or password is not UTF-8", userpass_status(False)) from exc
    if not user:
        raise SocksProtocolError("empty user name", userpass_status(False))
    return UserPass(user, password), end


def parse_request(buf: bytes | bytearray) -> tuple[SocksRequest, int] | None:
    """VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 §4); any command is returned, for the caller to answer."""
    if not buf:
        return None
    if buf[0] != SOCKS_VERSION:
        raise SocksProtocolError(f"request version 0x{buf[0]:02x}, expected 0x05", reply(Reply.GENERAL_FAILURE))
    if len(buf) < 4:
        return None
    if buf[2] != 0x00:
        raise SocksProtocolError(f"reserved byte 0x{buf[2]:02x}, expected 0x00", reply(Reply.GENERAL_FAILURE))
    atyp = buf[3]
    if atyp == AddressType.IPV4:
        end = 4 + 4 + 2
    elif atyp == AddressType.IPV6:
        end = 4 + 16 + 2
    elif atyp == AddressType.DOMAIN:
        if len(buf) < 5:
            return None
        if buf[4] == 0:
            raise SocksProtocolError("empty domain name", reply(Reply.GENERAL_FAILURE))
        end = 4 + 1 + buf[4] + 2
    else:
        raise SocksProtocolError(f"address type 0x{atyp:02x}", reply(Reply.ADDRESS_TYPE_NOT_SUPPORTED))
    if len(buf) < end:
        return None
    raw = bytes(buf[4 : end - 2])
    (port,) = struct.unpack("!H", buf[end - 2 : end])
    if atyp == AddressType.IPV4:
        host = str(ipaddress.IPv4Address(raw))
    elif atyp == AddressType.IPV6:
        host = str(ipaddress.IPv6Address(raw))
    else:
        try:
            host = raw[1:].decode("ascii").lower().rstrip(".")
        except UnicodeDecodeError as exc:
            raise SocksProtocolError("domain name is not ASCII", reply(Reply.GENERAL_FAILURE)) from exc
        if not host.isprintable() or " " in host or not host:
            raise SocksProtocolError(f"malformed domain name {host[:60]!r}", reply(Reply.GENERAL_FAILURE))
    if port == 0:
        raise SocksProtocolError(f"port 0 for {host}", reply(Reply.GENERAL_FAILURE))
    return SocksRequest(buf[1], host, port, AddressType(atyp)), end


def choose_method(greeting: Greeting, *, auth_required: bool) -> Method:
    """The server's pick (RFC 1928 §3): username/password when required, else no authentication."""
    wanted = Method.USERNAME_PASSWORD if auth_required else Method.NO_AUTH
    return wanted if greeting.offers(wanted) else Method.NO_ACCEPTABLE


# -- builders -------------------------------------------------------------------------------------
def method_selection(method: Method) -> bytes:
    """VER METHOD. RFC 1928 §3: "If the selected METHOD is X'FF', ... the client MUST close the connection." """
    return bytes([SOCKS_VERSION, method])


def userpass_status(ok: bool) -> bytes:
    """VER STATUS (RFC 1929 §2): "A STATUS field of X'00' indicates success"; the server then closes on failure."""
    return bytes([USERPASS_VERSION, 0x00 if ok else 0x01])


def reply(code: Reply, bind: tuple[str, int] = ("0.0.0.0", 0)) -> bytes:
    """VER REP RSV ATYP BND.ADDR BND.PORT (RFC 1928 §6)."""
    address = ipaddress.ip_address(bind[0])
    atyp = AddressType.IPV4 if address.version == 4 else AddressType.IPV6
    return bytes([SOCKS_VERSION, code, 0x00, atyp]) + address.packed + struct.pack("!H", bind[1])


# -- client side (tests and tools) ----------------------------------------------------------------
def greeting_bytes(*methods: Method) -> bytes:
    return bytes([SOCKS_VERSION, len(methods), *methods])


def userpass_bytes(user: str, password: str) -> bytes:
    u, p = user.encode("utf-8"), password.encode("utf-8")
    return bytes([USERPASS_VERSION, len(u)]) + u + bytes([len(p)]) + p


def request_bytes(host: str, port: int, command: Command = Command.CONNECT) -> bytes:
    """A request naming `host` as given: IP literals as IPv4/IPv6, anything else as a domain name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("ascii")
        dst = bytes([AddressType.DOMAIN, len(name)]) + name
    else:
        dst = bytes([AddressType.IPV4 if address.version == 4 else AddressType.IPV6]) + address.packed
    return bytes([SOCKS_VERSION, command, 0x00]) + dst + struct.pack("!H", port)
