"""The proxy's side of NTLM (MS-NLMP): the three messages, and NTLMv2 verification.

A proxy that offers only NTLM (Squid with `ntlm_auth`, Blue Coat, Zscaler's NTLM mode) answers a
client's NEGOTIATE message with a 407 carrying a CHALLENGE, on the same connection, and checks
the AUTHENTICATE message that follows against the user's password. The meter never gets that far
(it speaks Basic only), but a Windows PC or `curl --proxy-ntlm` does: with this the lab's NTLM-only
proxy lets them through, as the real one does, which is what shows that the proxy works and the
meter is what cannot pass.

Only NTLMv2 responses are accepted (what Windows sends since Vista and curl sends when the
CHALLENGE carries target information, as this one always does); an NTLMv1 or LM response is
refused, as a domain with LmCompatibilityLevel 5 refuses it. No session security (signing,
sealing) is negotiated: a proxy authenticates the connection and nothing more. MD4, which
OpenSSL 3 no longer offers by default, is here in Python (RFC 1320).

An `NtlmError` names what was wrong by position and length, never by the message's contents: the
messages travel in `Proxy-Authorization`, and the errors end up in the proxy's log.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3

NEGOTIATE_UNICODE = 0x00000001
REQUEST_TARGET = 0x00000004
NEGOTIATE_NTLM = 0x00000200
ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
EXTENDED_SESSIONSECURITY = 0x00080000
TARGET_INFO = 0x00800000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_56 = 0x80000000
CHALLENGE_FLAGS = (
    NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | ALWAYS_SIGN | TARGET_TYPE_DOMAIN
    | EXTENDED_SESSIONSECURITY | TARGET_INFO | NEGOTIATE_128 | NEGOTIATE_56
)  # fmt: skip

_AV_EOL, _AV_NB_COMPUTER, _AV_NB_DOMAIN = 0, 1, 2


class NtlmError(ValueError):
    """A message that is not what NTLM says it should be; the text names what was wrong."""


@dataclass(frozen=True)
class Authenticate:
    """The fields of an AUTHENTICATE message that a proxy checks."""

    user: str
    domain: str
    workstation: str
    nt_response: bytes
    lm_response: bytes


def message_type(token: bytes) -> int:
    """1, 2 or 3, after checking the signature."""
    if len(token) < 12 or token[:8] != SIGNATURE:
        raise NtlmError("not an NTLM message (no NTLMSSP signature)")
    kind = struct.unpack_from("<I", token, 8)[0]
    if kind not in (NEGOTIATE, CHALLENGE, AUTHENTICATE):
        raise NtlmError("an NTLM message of an unknown type, expected 1, 2 or 3")
    return int(kind)


def challenge_message(server_challenge: bytes, domain: str, computer: str) -> bytes:
    """A CHALLENGE for a client's NEGOTIATE: `server_challenge` (8 bytes), the target `domain`, and
    target information naming the domain and the `computer` (NTLMv2 responses sign it)."""
    if len(server_challenge) != 8:
        raise ValueError("the server challenge is 8 bytes")
    target = domain.upper().encode("utf-16-le")
    info = _av_pair(_AV_NB_DOMAIN, target) + _av_pair(_AV_NB_COMPUTER, computer.upper().encode("utf-16-le"))
    info += _av_pair(_AV_EOL, b"")
    header = 48  # signature, type, target name (8), flags, challenge (8), reserved (8), target info (8)
    body = target + info
    return (
        SIGNATURE + struct.pack("<I", CHALLENGE)
        + struct.pack("<HHI", len(target), len(target), header)
        + struct.pack("<I", CHALLENGE_FLAGS) + server_challenge + bytes(8)
        + struct.pack("<HHI", len(info), len(info), header + len(target))
        + body
    )  # fmt: skip


def parse_authenticate(token: bytes) -> Authenticate:
    """The AUTHENTICATE message's responses and names (Unicode or OEM, by its flags)."""
    if message_type(token) != AUTHENTICATE:
        raise NtlmError("expected an NTLM AUTHENTICATE message (type 3)")
    if len(token) < 64:
        raise NtlmError(f"NTLM AUTHENTICATE message of {len(token)} bytes, shorter than its 64-byte header")
    lm, nt, domain, user, workstation = (_field(token, offset) for offset in (12, 20, 28, 36, 44))
    flags = struct.unpack_from("<I", token, 60)[0]
    encoding = "utf-16-le" if flags & NEGOTIATE_UNICODE else "cp437"
    try:
        names = [raw.decode(encoding) for raw in (user, domain, workstation)]
    except UnicodeDecodeError as exc:
        raise NtlmError(f"NTLM AUTHENTICATE message: a name is not valid {encoding}") from exc
    return Authenticate(names[0], names[1], names[2], nt, lm)


def verify(auth: Authenticate, password: str, server_challenge: bytes) -> bool:
    """Whether `auth` carries a valid NTLMv2 response to `server_challenge` for `password`
    (MS-NLMP 3.3.2: NTProofStr = HMAC-MD5(NTOWFv2, challenge + blob))."""
    if len(auth.nt_response) <= 24:  # NTLMv1 (24 bytes) or none: refused
        return False
    proof, blob = auth.nt_response[:16], auth.nt_response[16:]
    key = ntowf_v2(password, auth.user, auth.domain)
    expected = hmac.new(key, server_challenge + blob, "md5").digest()
    return hmac.compare_digest(proof, expected)


def ntowf_v2(password: str, user: str, domain: str) -> bytes:
    """HMAC-MD5(MD4(UTF-16LE(password)), UTF-16LE(UPPER(user) + domain))."""
    return hmac.new(md4(password.encode("utf-16-le")), (user.upper() + domain).encode("utf-16-le"), "md5").digest()


def new_challenge() -> bytes:
    return os.urandom(8)


def _av_pair(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def _field(token: bytes, offset: int) -> bytes:
    """The bytes a security buffer (length, allocated length, offset) at `offset` points at."""
    length, _, start = struct.unpack_from("<HHI", token, offset)
    if start + length > len(token):
        raise NtlmError(f"NTLM AUTHENTICATE message: a field at {start} of {length} bytes runs past its end")
    return token[start : start + length]


# -- MD4 (RFC 1320) ----------------------------------------------------------------------------------
_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & _MASK


def md4(data: bytes) -> bytes:
    """RFC 1320 MD4 digest (16 bytes)."""
    message = data + b"\x80" + bytes((55 - len(data)) % 64) + struct.pack("<Q", (len(data) * 8) & (2**64 - 1))
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for start in range(0, len(message), 64):
        x = struct.unpack_from("<16I", message, start)
        aa, bb, cc, dd = a, b, c, d
        for i in range(16):  # round 1: F(b, c, d) = (b & c) | (~b & d)
            k, s = i, (3, 7, 11, 19)[i % 4]
            a = _rotl((a + ((b & c) | (~b & d)) + x[k]) & _MASK, s)
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 2: G = majority, + 0x5A827999
            k, s = (i % 4) * 4 + i // 4, (3, 5, 9, 13)[i % 4]
            a = _rotl((a + ((b & c) | (b & d) | (c & d)) + x[k] + 0x5A827999) & _MASK, s)
            a, b, c, d = d, a, b, c
        for i in range(16):  # round 3: H = parity, + 0x6ED9EBA1
            k, s = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i], (3, 9, 11, 15)[i % 4]
            a = _rotl((a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1) & _MASK, s)
            a, b, c, d = d, a, b, c
        a, b, c, d = (a + aa) & _MASK, (b + bb) & _MASK, (c + cc) & _MASK, (d + dd) & _MASK
    return struct.pack("<4I", a, b, c, d)
