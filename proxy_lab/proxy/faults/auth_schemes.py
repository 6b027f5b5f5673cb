"""auth_schemes: a proxy that offers only the listed schemes (NTLM / Negotiate), as Squid for Windows does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import quoted, squid_cache_access_denied

Scheme = Literal["NTLM", "Negotiate", "Basic"]


@dataclass(kw_only=True)
class AuthSchemes(Fault, name="auth_schemes"):
    """Answers 407 with only the listed schemes (Squid's ERR_CACHE_ACCESS_DENIED); Basic passes only if listed."""

    schemes: list[Scheme] = field(
        default_factory=lambda: ["NTLM"],
        metadata=doc("schemes offered, one Proxy-Authenticate line each, in this order"),
    )
    realm: str = field(
        default="proxy-lab", metadata=doc("realm of the Basic challenge when Basic is offered")
    )
    close: bool = field(
        default=True,
        metadata=doc("Connection: close with the 407, as in the captured Squid answer (vscode#13302)"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.schemes:
            raise ValueError("schemes: offer at least one of NTLM, Negotiate, Basic")

    def on_auth(self, ctx: Ctx, answer: Refusal | None) -> Refusal | None:
        # NTLM and Negotiate need a multi-leg handshake the lab does not implement, so only Basic
        # credentials that matched one of the proxy's users can pass, and only when Basic is offered.
        if "Basic" in self.schemes and ctx.user is not None:
            return None
        challenges = [f"Basic realm={quoted(self.realm)}" if s == "Basic" else s for s in self.schemes]
        sent = ctx.request.get("Proxy-Authorization") if ctx.request is not None else None
        offered = ", ".join(self.schemes)
        if sent is None:
            why = f"auth_schemes: no credentials; the proxy offers {offered}"
        elif sent.split(" ", 1)[0].lower() == "basic" and "Basic" not in self.schemes:
            why = f"auth_schemes: Basic credentials are not accepted; the proxy offers only {offered}"
        else:
            why = f"auth_schemes: credentials not accepted ({ctx.auth_why or 'scheme not offered'}); the proxy offers {offered}"
        return squid_cache_access_denied(ctx.authority, challenges, keep_alive=not self.close, why=why)
