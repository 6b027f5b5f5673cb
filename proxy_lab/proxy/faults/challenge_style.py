"""challenge_style: a non-compliant authentication challenge (401 + WWW-Authenticate, or 407 without a challenge)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc


@dataclass(kw_only=True)
class ChallengeStyle(Fault, name="challenge_style"):
    """Replaces the proxy's 407 with an envoy-style 401 Bearer answer or a 407 that names no scheme."""

    style: Literal["401_bearer", "407_no_header"] = field(
        default="401_bearer",
        metadata=doc(
            "'401_bearer': 401 + www-authenticate: Bearer realm=\"\" (envoy egress); '407_no_header': no Proxy-Authenticate"
        ),
    )

    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        if answer is None or answer.status != 407:
            return answer
        if self.style == "407_no_header":
            # RFC 9110 §15.5.8 requires Proxy-Authenticate on a 407; this answer breaks that rule.
            headers = tuple((k, v) for k, v in answer.headers if k.lower() != "proxy-authenticate")
            return dataclasses.replace(
                answer, headers=headers, why=f"challenge_style 407_no_header: {answer.why}"
            )
        # An envoy-based egress proxy's answer: an origin's 401, lower-case header names as envoy
        # writes them, and a Bearer challenge a CONNECT client cannot answer.
        return Refusal(
            401,
            "Unauthorized",
            (
                ("www-authenticate", 'Bearer realm=""'),
                ("content-length", "0"),
                ("server", "envoy"),
                ("connection", "close"),
            ),
            b"",
            why=f"challenge_style 401_bearer: {answer.why}",
        )
