"""Raw TCP listeners: the TeamViewer-like line protocol on 5938 and mtalk on 5228.

The sessions are sans-IO (`feed(bytes) -> (reply, close)`); `RawTcpConnection` wires one to a
socket. Lines are `\\n`-terminated and at most `MAX_LINE` bytes; anything off-script gets an
error line (TeamViewer) or nothing (mtalk), then the connection is closed.

- TeamViewer (docs/cloud-protocol.md): `\\x17\\x24HELLO <meter>\\n` -> `\\x17\\x24OK <session>\\n`,
  then each `\\x17\\x24PING\\n` -> `\\x17\\x24PONG\\n`. The session is held open between pings,
  so a proxy's idle timeout shows as a cut session.
- mtalk: `MTALK HELLO\\n` -> `MTALK OK\\n`, then each keep-alive `MTALK PING\\n` -> `MTALK PONG\\n`;
  the connection stays open between them until the client closes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from proxy_lab.cloud.conn import Connections, StreamConnection
from proxy_lab.cloud.state import CloudState
from proxy_lab.protocol import messages as msg
from proxy_lab.protocol.lines import MTALK_PING, MTALK_PONG

MAX_LINE = 256


class LineSession:
    """Base: splits input into lines and answers each with `line()`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.closed = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """-> (bytes to send, close after sending)."""
        if self.closed:
            return b"", True
        self._buf += data
        out = bytearray()
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self.closed = True
                    return bytes(out) + self.error(f"line longer than {MAX_LINE} bytes"), True
                return bytes(out), False
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            reply, close = self.line(line)
            out += reply
            if close:
                self.closed = True
                return bytes(out), True

    def line(self, line: bytes) -> tuple[bytes, bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def error(self, reason: str) -> bytes:
        return b""


class TeamViewerSession(LineSession):
    """5938: HELLO once, then PING/PONG for as long as the client likes."""

    def __init__(self, new_session: Callable[[str], str]) -> None:
        super().__init__()
        self.new_session = new_session
        self.session: str | None = None
        self.pings = 0

    def line(self, line: bytes) -> tuple[bytes, bool]:
        if self.session is None:
            try:
                meter = msg.parse_teamviewer_hello(line)
            except ValueError as exc:
                return self.error(str(exc)), True
            self.session = self.new_session(meter)
            return msg.teamviewer_ok(self.session), False
        if line == msg.TV_PING:
            self.pings += 1
            return msg.TV_PONG, False
        return self.error(f"unexpected line {line[:40]!r}; expected {msg.TV_PING!r}"), True

    def error(self, reason: str) -> bytes:
        return (
            msg.TV_PREFIX + b"ERR " + reason.encode("ascii", "backslashreplace").replace(b"\n", b" ") + b"\n"
        )


class MtalkSession(LineSession):
    """5228: one HELLO answered OK, then keep-alive PINGs answered PONG; any other line ends it."""

    def __init__(self) -> None:
        super().__init__()
        self.greeted = False

    def line(self, line: bytes) -> tuple[bytes, bool]:
        if not self.greeted and line == msg.MTALK_HELLO:
            self.greeted = True
            return msg.MTALK_OK, False
        if self.greeted and line == MTALK_PING:
            return MTALK_PONG, False
        return b"", True


RAW_EXCHANGES = ("teamviewer", "mtalk")


class RawTcpConnection(StreamConnection):
    """One connection to a raw TCP listener, speaking `exchange` ("teamviewer" or "mtalk")."""

    _counter = itertools.count(1)

    def __init__(
        self, exchange: str, kind: str, state: CloudState, registry: Connections, idle_timeout_s: float
    ) -> None:
        super().__init__(registry, idle_timeout_s)
        self.kind = kind
        self.state = state
        self.session: LineSession
        if exchange == "teamviewer":
            self.session = TeamViewerSession(self._new_session)
        elif exchange == "mtalk":
            self.session = MtalkSession()
        else:
            raise ValueError(f"raw TCP exchange {exchange!r} is not one of {', '.join(RAW_EXCHANGES)}")

    def _new_session(self, meter: str) -> str:
        session = f"TV{next(self._counter):08d}"
        self.state.sessions[session] = meter
        return session

    def connection_made(self, transport: object) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self.state.connections[self.kind] += 1

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.touch()
        reply, close = self.session.feed(data)
        if reply:
            self.write(reply)
        if close:
            self.close()

    def eof_received(self) -> bool | None:
        self.close()
        return None
