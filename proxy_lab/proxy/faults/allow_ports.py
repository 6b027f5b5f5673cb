"""allow_ports: CONNECT only to listed ports, as Squid's default `http_access deny CONNECT !SSL_ports`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx, Fault, doc
from proxy_lab.proxy.responses import lab_error, squid_access_denied

# Squid's shipped squid.conf: `acl SSL_ports port 443` + `http_access deny CONNECT !SSL_ports`.
PRESETS: dict[str, list[int]] = {"ssl_ports_only": [443]}


@dataclass(kw_only=True)
class AllowPorts(Fault, name="allow_ports"):
    """Refuses CONNECT to any port not in the allow-list (Squid's SSL_ports rule by default)."""

    ports_allowed: list[int] = field(
        default_factory=list, metadata=doc("ports CONNECT may reach (added to the preset's)")
    )
    preset: Literal["", "ssl_ports_only"] = field(
        default="", metadata=doc("'ssl_ports_only' = Squid's default, 443 only")
    )
    action: Literal["403", "405", "close", "reset"] = field(
        default="403",
        metadata=doc(
            "403 as Squid (ERR_ACCESS_DENIED), 405, close without answer, or TCP reset (deny_info TCP_RESET)"
        ),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.ports_allowed and not self.preset:
            raise ValueError("give ports_allowed or preset = 'ssl_ports_only'")
        for p in self.ports_allowed:
            if not 0 < p < 65536:
                raise ValueError(f"ports_allowed: {p} is outside 1-65535")

    @property
    def allowed(self) -> list[int]:
        return sorted(set(PRESETS.get(self.preset, [])) | set(self.ports_allowed))

    async def on_connect(self, ctx: Ctx) -> Refusal | None:
        if ctx.port in self.allowed:
            return None
        why = f"allow_ports: port {ctx.port} is not in {self.allowed}"
        if self.action == "403":
            return squid_access_denied(ctx.authority, why=why)
        if self.action == "405":
            return lab_error(
                405,
                f"CONNECT to port {ctx.port} is not allowed",
                why=why,
                headers=(("Allow", "GET, HEAD, POST"),),
            )
        return Refusal(action=self.action, why=why)
