"""Refusal renders itself as a framed answer, or as nothing for close and reset; it validates itself."""

from __future__ import annotations

import pytest

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.responses import lab_error, squid_connect_fail


def test_a_refusal_is_framed_and_closes_unless_kept_alive() -> None:
    assert Refusal(403, "Forbidden", (("X-A", "1"),), b"no").to_bytes() == (
        b"HTTP/1.1 403 Forbidden\r\nX-A: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
    )
    assert (
        b"Connection: keep-alive" in Refusal(407, "Proxy Authentication Required", keep_alive=True).to_bytes()
    )


def test_headers_given_explicitly_are_not_duplicated() -> None:
    wire = Refusal(401, "Unauthorized", (("content-length", "0"), ("connection", "close"))).to_bytes()
    assert wire.lower().count(b"content-length") == 1 and wire.lower().count(b"connection") == 1


def test_close_and_reset_have_no_bytes() -> None:
    assert (
        Refusal(action="reset").to_bytes() == b""
        and Refusal(action="close").describe() == "close without an answer"
    )


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"status": 200, "reason": "OK"}, "success"),
        ({"status": 99}, "outside 100-599"),
        ({"status": 403, "reason": "Forbidden\r\nX-Injected: 1"}, "control characters"),
        ({"status": 403, "headers": (("X", "a\r\nb"),)}, "control character"),
        ({"status": 403, "headers": (("Bad Name", "a"),)}, "not an RFC 9110 token"),
        ({"action": "explode"}, "action"),
    ],
)
def test_a_malformed_refusal_is_rejected_when_made(kwargs: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Refusal(**kwargs)  # type: ignore[arg-type]


def test_describe_names_the_squid_error() -> None:
    refusal = squid_connect_fail(
        "a.test:443", "127.0.0.1:1", errno=111, message="Connection refused", timeout=False, server="squid"
    )
    assert refusal.describe() == "503 Service Unavailable (X-Squid-Error: ERR_CONNECT_FAIL 111)"
    assert lab_error(400, "bad <input>").body.count(b"&lt;input&gt;") == 1  # HTML-escaped
