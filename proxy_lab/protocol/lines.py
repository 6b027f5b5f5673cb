"""The raw-TCP line protocols (TeamViewer-like on 5938, mtalk on 5228) and the DynGate answers,
TeamViewer's HTTP fallback on port 80.

Lines end with `\\n`. TeamViewer-like: the client sends `\\x17\\x24HELLO <meter>\\n`, the server
answers `\\x17\\x24OK <session>\\n`, then each `\\x17\\x24PING\\n` gets `\\x17\\x24PONG\\n`. mtalk:
`MTALK HELLO\\n` gets `MTALK OK\\n`, then each `MTALK PING\\n` gets `MTALK PONG\\n`. DynGate: `GET /din.aspx?s=..` gets `DYNGATE OK s=<s>`, `POST
/dout.aspx?s=..` with n body bytes gets `DYNGATE OK s=<s> bytes=<n>` (the guide's URL formats).
"""

from __future__ import annotations

import re

from proxy_lab.protocol.fields import count, meter_id, session_id, token

# Every TeamViewer-like line starts with 0x17 0x24. 0x17 is the first byte of TeamViewer's native
# protocol, which layer-7 firewall rules match on (a MikroTik rule `regexp="^\\x17"`, for example).
TV_PREFIX = b"\x17\x24"
TV_PING = TV_PREFIX + b"PING\n"
TV_PONG = TV_PREFIX + b"PONG\n"
MTALK_HELLO = b"MTALK HELLO\n"
MTALK_OK = b"MTALK OK\n"
MTALK_PING = b"MTALK PING\n"  # the keep-alive a held mtalk session sends (docs/cloud-protocol.md)
MTALK_PONG = b"MTALK PONG\n"

_HELLO = re.compile(rb"\x17\x24HELLO ([A-Za-z0-9._-]{1,64})\n")
_OK = re.compile(rb"\x17\x24OK ([A-Za-z0-9._-]{1,64})\n")
_DYNGATE = re.compile(rb"DYNGATE OK s=([A-Za-z0-9._:-]{1,64})(?: bytes=([0-9]{1,12}))?\r?\n?")


# -- raw TCP 5938 (TeamViewer-like) --------------------------------------------------------------
def _field(pattern: re.Pattern[bytes], line: bytes, verb: str, field: str) -> str:
    """The one field of a TeamViewer-like line `\\x17\\x24<verb> <field>\\n`, or ValueError."""
    m = pattern.fullmatch(bytes(line))
    if not m:
        raise ValueError(
            f"not a TeamViewer {verb} line: {bytes(line)[:60]!r}; expected b'\\x17\\x24{verb} {field}\\n'"
        )
    return m.group(1).decode()


def teamviewer_hello(meter: str) -> bytes:
    """The client's first line: `\\x17\\x24HELLO <meter>\\n`."""
    return TV_PREFIX + b"HELLO " + meter_id(meter).encode() + b"\n"


def parse_teamviewer_hello(line: bytes) -> str:
    """-> the meter id of a HELLO line (with its newline)."""
    return meter_id(_field(_HELLO, line, "HELLO", "<meter>"))


def teamviewer_ok(session: str) -> bytes:
    """The server's answer to HELLO: `\\x17\\x24OK <session>\\n`."""
    return TV_PREFIX + b"OK " + session_id(session).encode() + b"\n"


def parse_teamviewer_ok(line: bytes) -> str:
    """-> the session id of an OK line (with its newline)."""
    return _field(_OK, line, "OK", "<session>")


# -- DynGate (TeamViewer's HTTP fallback) --------------------------------------------------------
def dyngate_in_answer(s: str) -> bytes:
    """Answer to `GET /din.aspx?s=..&id=0&client=DynGate`: `DYNGATE OK s=<s>`."""
    return f"DYNGATE OK s={token(s, 's')}".encode()


def dyngate_out_answer(s: str, n: int) -> bytes:
    """Answer to `POST /dout.aspx?s=..&client=DynGate` with n body bytes: `DYNGATE OK s=<s> bytes=<n>`."""
    return f"DYNGATE OK s={token(s, 's')} bytes={count(n, 'bytes')}".encode()


def parse_dyngate_answer(body: bytes) -> tuple[str, int | None]:
    """-> (s, bytes) for a dout answer, (s, None) for a din answer."""
    m = _DYNGATE.fullmatch(bytes(body))
    if not m:
        raise ValueError(
            f"not a DynGate answer: {bytes(body)[:60]!r}; expected b'DYNGATE OK s=<s>[ bytes=<n>]'"
        )
    return m.group(1).decode(), int(m.group(2)) if m.group(2) is not None else None
