"""Raw TCP: the TeamViewer-like protocol on 5938 and mtalk on 5228, sans-IO and over sockets."""

from __future__ import annotations

import socket

from proxy_lab.cloud import Cloud
from proxy_lab.cloud.rawtcp import MAX_LINE, MtalkSession, TeamViewerSession
from proxy_lab.protocol import messages as m
from tests.cloud.cloud_testclient import read_all

METER = "PBLAB-0001"


def _line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\n") and len(buf) <= MAX_LINE:
        data = sock.recv(1)
        if not data:
            break
        buf += data
    return buf


def test_teamviewer_session_script() -> None:
    session = TeamViewerSession(lambda meter: f"TV-{meter}")
    assert session.feed(m.teamviewer_hello(METER)[:5]) == (b"", False)  # a partial line waits
    assert session.feed(m.teamviewer_hello(METER)[5:]) == (m.teamviewer_ok(f"TV-{METER}"), False)
    assert session.feed(m.TV_PING + m.TV_PING) == (m.TV_PONG + m.TV_PONG, False)
    reply, close = session.feed(b"GET / HTTP/1.1\n")
    assert close and reply.startswith(b"\x17\x24ERR ")


def test_teamviewer_refuses_a_first_line_that_is_not_hello() -> None:
    reply, close = TeamViewerSession(lambda meter: "S").feed(m.TV_PING)
    assert close and b"HELLO" in reply


def test_an_overlong_line_closes_the_session() -> None:
    reply, close = TeamViewerSession(lambda meter: "S").feed(b"\x17\x24" + b"A" * (MAX_LINE + 10))
    assert close and b"longer than" in reply


def test_mtalk_session_script() -> None:
    session = MtalkSession()
    assert session.feed(m.MTALK_HELLO) == (m.MTALK_OK, False)
    assert session.feed(b"MORE\n") == (b"", True)


def test_teamviewer_handshake_then_ping_pong_over_port_5938(cloud: Cloud) -> None:
    with socket.create_connection(cloud.resolver.lookup("master3.teamviewer.com", 5938), timeout=5) as sock:
        sock.sendall(m.teamviewer_hello(METER))
        session = m.parse_teamviewer_ok(_line(sock))
        for _ in range(3):
            sock.sendall(m.TV_PING)
            assert _line(sock) == m.TV_PONG
    assert cloud.state.sessions[session] == METER
    assert cloud.state.connections["tcp:5938"] == 1


def test_an_http_request_on_port_5938_gets_an_error_line_and_a_close(cloud: Cloud) -> None:
    # what a proxy that answers or forwards HTTP instead of tunnelling would send
    with socket.create_connection(cloud.addresses["tcp:5938"], timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: master3.teamviewer.com\r\n\r\n")
        raw = read_all(sock)
    assert raw.startswith(b"\x17\x24ERR not a TeamViewer HELLO line")


def test_mtalk_hello_is_answered_on_port_5228(cloud: Cloud) -> None:
    with socket.create_connection(
        cloud.resolver.lookup("mobile-gtalk.l.google.com", 5228), timeout=5
    ) as sock:
        sock.sendall(m.MTALK_HELLO)
        assert _line(sock) == m.MTALK_OK


def test_mtalk_answers_keep_alives_after_hello_only() -> None:
    from proxy_lab.protocol.lines import MTALK_PING, MTALK_PONG

    session = MtalkSession()
    assert session.feed(MTALK_PING) == (b"", True)  # a keep-alive before HELLO ends the session
    session = MtalkSession()
    session.feed(m.MTALK_HELLO)
    assert session.feed(MTALK_PING + MTALK_PING) == (MTALK_PONG + MTALK_PONG, False)

