"""auth_schemes: a proxy that offers only the listed schemes (NTLM / Negotiate), as Squid for Windows does.

NTLM is carried out as a real NTLM proxy does (ntlm.py): a NEGOTIATE gets a 407 with a CHALLENGE on
the same connection, kept open whatever `close` says (the handshake needs it), and a valid NTLMv2
AUTHENTICATE for one of the proxy's users lets the CONNECT through. So `curl --proxy-ntlm` and a
Windows PC pass the lab's NTLM-only proxy while the meter, which speaks Basic only, does not.
Negotiate (Kerberos/SPNEGO) needs a KDC and is only offered, never completed.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import proxy_lab.proxy.ntlm as ntlm
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import quoted, squid_cache_access_denied

MAX_HANDSHAKES = 4096  # connections between an NTLM CHALLENGE and its AUTHENTICATE, remembered at once

Scheme = Literal["NTLM", "Negotiate", "Basic"]


@dataclass(kw_only=True)
class AuthSchemes(Fault, name="auth_schemes"):
    """Answers 407 with only the listed schemes (Squid's ERR_CACHE_ACCESS_DENIED); NTLM clients with a proxy user's password pass (NTLMv2), Basic only if listed."""

    schemes: list[Scheme] = field(
        default_factory=lambda: ["NTLM"],
        metadata=doc("schemes offered, one Proxy-Authenticate line each, in this order"),
    )
    realm: str = field(
        default="proxy-lab", metadata=doc("realm of the Basic challenge when Basic is offered")
    )
    close: bool = field(
        default=True,
        metadata=doc(
            "Connection: close with the 407 that asks for credentials, as in the captured Squid answer "
            "(vscode#13302); the NTLM CHALLENGE's 407 keeps the connection open regardless"
        ),
    )
    domain: str = field(default="PROXY-LAB", metadata=doc("the NTLM target domain named in the CHALLENGE"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.schemes:
            raise ValueError("schemes: offer at least one of NTLM, Negotiate, Basic")
        # (proxy address, connection id) -> server challenge: a fault may serve several proxies.
        self._challenges: OrderedDict[tuple[tuple[str, int], int], bytes] = OrderedDict()

    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        # Basic credentials that matched one of the proxy's users pass when Basic is offered; NTLM
        # runs its handshake; Negotiate is never completed.
        if "Basic" in self.schemes and ctx.user is not None:
            return None
        sent = ctx.request.get("Proxy-Authorization") if ctx.request is not None else None
        offered = ", ".join(self.schemes)
        if sent is not None and "NTLM" in self.schemes and sent.split(" ", 1)[0].lower() == "ntlm":
            return self._ntlm(ctx, sent.partition(" ")[2].strip())
        if sent is None:
            why = f"auth_schemes: no credentials; the proxy offers {offered}"
        elif sent.split(" ", 1)[0].lower() == "basic" and "Basic" not in self.schemes:
            why = f"auth_schemes: Basic credentials are not accepted; the proxy offers only {offered}"
        else:
            why = f"auth_schemes: credentials not accepted ({ctx.auth_why or 'scheme not offered'}); the proxy offers {offered}"
        return self._ask(ctx, why)

    def _ask(self, ctx: Ctx, why: str) -> Refusal:
        challenges = [f"Basic realm={quoted(self.realm)}" if s == "Basic" else s for s in self.schemes]
        return squid_cache_access_denied(ctx.authority, challenges, keep_alive=not self.close, why=why)

    def _ntlm(self, ctx: Ctx, encoded: str) -> Refusal | None:
        """One leg of NTLM: NEGOTIATE -> 407 with a CHALLENGE (connection kept); AUTHENTICATE -> through
        when its NTLMv2 response proves a proxy user's password, else the first 407 again."""
        try:
            token = base64.b64decode(encoded, validate=True)
            kind = ntlm.message_type(token)
        except (binascii.Error, ValueError) as exc:
            return self._ask(ctx, f"auth_schemes: malformed NTLM token ({exc})")
        if kind == ntlm.NEGOTIATE:
            server_challenge = ntlm.new_challenge()
            self._challenges[(ctx.proxy, ctx.conn_id)] = server_challenge
            while len(self._challenges) > MAX_HANDSHAKES:
                self._challenges.popitem(last=False)
            message = base64.b64encode(ntlm.challenge_message(server_challenge, self.domain, "proxy-lab")).decode()
            return squid_cache_access_denied(
                ctx.authority, [f"NTLM {message}"], keep_alive=True,
                why="auth_schemes: NTLM NEGOTIATE answered with a CHALLENGE (leg 2 of 3)",
            )  # fmt: skip
        if kind != ntlm.AUTHENTICATE:
            return self._ask(ctx, "auth_schemes: an NTLM CHALLENGE message from the client")
        issued = self._challenges.pop((ctx.proxy, ctx.conn_id), None)
        if issued is None:
            return self._ask(
                ctx, "auth_schemes: NTLM AUTHENTICATE without a CHALLENGE on this connection "
                "(a new connection between the legs: NTLM authenticates one connection)",
            )  # fmt: skip
        try:
            auth = ntlm.parse_authenticate(token)
        except ntlm.NtlmError as exc:
            return self._ask(ctx, f"auth_schemes: {exc}")
        known = ctx.password_of(auth.user) if ctx.password_of is not None else None
        if known is None:
            return self._ask(ctx, f"auth_schemes: NTLM for an unknown user ({len(auth.user)} characters)")
        name, password = known
        if len(auth.nt_response) <= 24:
            return self._ask(ctx, f"auth_schemes: NTLMv1 response from user {name!r} refused (NTLMv2 only)")
        if not ntlm.verify(auth, password, issued):
            return self._ask(ctx, f"auth_schemes: NTLMv2 response from user {name!r} does not match the password")
        # Nothing of the message itself (domain, workstation, the user name as sent) goes into a why.
        ctx.user, ctx.auth_why = name, f"user {name!r} authenticated with NTLMv2"
        return None
