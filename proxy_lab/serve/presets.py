"""The demo story's presets: each a list of faults (name, settings) that replaces the faults in force.

The presets mirror the situations the guide warns about. The bypass list of the last inspection
preset is exact: every host the catalog lists with TLS on it, as the guide asks ("These URLs must be
accessible from the device ... free of any SSL packet inspection"); no wildcard is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy_lab.catalog import Catalog


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    lesson: str
    faults: tuple[tuple[str, dict[str, Any]], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "lesson": self.lesson,
            "faults": [{"name": n, "settings": s} for n, s in self.faults],
        }


def presets(catalog: Catalog) -> dict[str, Preset]:
    """The presets, in the order the demo tells the story."""
    bypass = catalog.hosts("tls")
    found = [
        Preset("compliant", "compliant", "A proxy that tunnels CONNECT to 80, 443 and 5938 untouched: every service passes.", ()),
        Preset(
            "stock_squid", "stock Squid port rule",
            "Squid's shipped `http_access deny CONNECT !SSL_ports` refuses CONNECT to 80 and 5938.",
            (("allow_ports", {"preset": "ssl_ports_only"}),),
        ),
        Preset(
            "ssl_inspection", "SSL inspection",
            "The proxy re-signs TLS with the corporate CA; the meter trusts the PB root only.",
            (("tls_inspect", {}),),
        ),
        Preset(
            "ssl_inspection_bypassed", "SSL inspection with the guide's hosts bypassed",
            f"The same inspection with the {len(bypass)} TLS hosts of the guide bypassed: the meter passes.",
            (("tls_inspect", {"bypass": bypass}),),
        ),
        Preset(
            "ntlm_only", "NTLM only",
            "The proxy offers NTLM only; the meter speaks Basic proxy authentication only.",
            (("auth_schemes", {"schemes": ["NTLM"]}),),
        ),
        Preset(
            "slow_link", "384 kbit/s link",
            "Every tunnel limited to the guide's minimum, 384 kbit/s each way.",
            (("throttle", {"rate_kbps": 384.0}),),
        ),
    ]  # fmt: skip
    return {p.name: p for p in found}
