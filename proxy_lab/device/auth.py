"""How the device answers a 407: Basic credentials only, as Android's OkHttp does.

Owns the encoding of `Proxy-Authorization: Basic ...` (RFC 7617) and the pure decision whether a
407 is answered with a retry. Android 7's `AuthenticatorAdapter` loops over the challenges and acts
only when `"Basic".equalsIgnoreCase(challenge.getScheme())`; anything else (NTLM, Negotiate, Digest)
makes `RealConnection.createTunnel` fail with "Failed to authenticate with proxy".
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

from proxy_lab.response import Challenge


def basic_credentials(username: str, password: str, challenge: Challenge | None = None) -> str:
    """The value of a `Proxy-Authorization` field for Basic (RFC 7617 §2).

    `base64(user-id ":" password)`. The octets: UTF-8 when the challenge says `charset="UTF-8"`
    (RFC 7617 §2.1, matched case-insensitively), otherwise ISO-8859-1 as OkHttp's
    `Credentials.basic()` defaults, falling back to UTF-8 for characters Latin-1 cannot hold.
    """
    text = f"{username}:{password}"
    charset = (challenge.param("charset") or "").lower() if challenge else ""
    if charset == "utf-8":
        raw = text.encode("utf-8")
    else:
        try:
            raw = text.encode("latin-1")
        except UnicodeEncodeError:
            raw = text.encode("utf-8")
    return "Basic " + base64.b64encode(raw).decode("ascii")


def basic_challenge(challenges: list[Challenge]) -> Challenge | None:
    """The first challenge offering Basic; the scheme is case-insensitive (RFC 9110 §11.1)."""
    for c in challenges:
        if c.scheme.lower() == "basic":
            return c
    return None


Why = Literal["retry", "no_challenge", "no_basic", "no_credentials", "rejected", "attempts"]


@dataclass(frozen=True)
class AuthDecision:
    """What to do with a 407: retry with Basic, or give up and say why."""

    why: Why
    challenge: Challenge | None = None

    @property
    def retry(self) -> bool:
        return self.why == "retry"


def decide_on_407(
    challenges: list[Challenge],
    *,
    has_credentials: bool,
    credentials_sent: bool,
    attempts: int,
    max_attempts: int,
) -> AuthDecision:
    """Answer a 407 with a retry only when Basic is offered, credentials are configured and have
    not been sent yet (a second 407 after sending them means they were rejected: OkHttp's
    authenticator gives up rather than resend the same pair), and fewer than `max_attempts` CONNECTs
    have been sent for this endpoint."""
    if not challenges:
        # RFC 9110 §11.7.1: "The proxy MUST send a Proxy-Authenticate header field".
        return AuthDecision("no_challenge")
    basic = basic_challenge(challenges)
    if basic is None:
        return AuthDecision("no_basic")
    if not has_credentials:
        return AuthDecision("no_credentials", basic)
    if credentials_sent:
        return AuthDecision("rejected", basic)
    if attempts >= max_attempts:
        return AuthDecision("attempts", basic)
    return AuthDecision("retry", basic)
