"""CloudState: what the simulated back end has received, and the knobs for negative controls.

Counters are for tests and durability checks; knobs may be flipped at run time (from the cloud's
event loop or, as single attribute assignments, from another thread) and act on the next request.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


class CloudSettings(Protocol):
    """What a run may set on the cloud for its duration (a scenario's `[cloud]` table satisfies it)."""

    @property
    def download_bytes(self) -> int: ...
    @property
    def drop_receipts(self) -> bool: ...
    @property
    def corrupt_downloads(self) -> bool: ...


def _name(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass
class CloudState:
    # -- what was received ------------------------------------------------------------------------
    transactions: dict[str, int] = field(default_factory=dict)  # record id -> times received
    requests: Counter[str] = field(default_factory=Counter)  # HTTP requests per host (Host/SNI)
    connections: Counter[str] = field(default_factory=Counter)  # accepted connections per listener kind
    dns_queries: Counter[str] = field(default_factory=Counter)  # DNS questions per name asked
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> meter (auth and TeamViewer)
    # exchange -> accepted uploads (refill, audit, transactions, health_upload)
    uploads: Counter[str] = field(default_factory=Counter)
    # -- knobs ------------------------------------------------------------------------------------
    drop_receipts: bool = False  # store a transaction upload, then close without answering
    corrupt_downloads: bool = False  # serve each file with one byte flipped after signing
    download_bytes: int = 48 * 1024  # size of every downloadable file (signed per size on first use)
    dns_nxdomain: set[str] = field(default_factory=set)  # names answered NXDOMAIN even if known
    dns_servfail: set[str] = field(default_factory=set)  # names answered SERVFAIL

    def __post_init__(self) -> None:
        self._default_download_bytes = self.download_bytes

    def record_transactions(self, ids: list[str]) -> list[str]:
        """Count each id received; return the distinct ids in first-seen order (what a receipt names)."""
        for i in ids:
            self.transactions[i] = self.transactions.get(i, 0) + 1
        return list(dict.fromkeys(ids))

    def dns_rcode_override(self, name: str) -> str | None:
        """'NXDOMAIN' or 'SERVFAIL' when a knob names `name`, else None."""
        n = _name(name)
        if n in {_name(x) for x in self.dns_servfail}:
            return "SERVFAIL"
        if n in {_name(x) for x in self.dns_nxdomain}:
            return "NXDOMAIN"
        return None

    def reset(self) -> None:
        """Forget everything received and put every knob back to its default (download_bytes: as built)."""
        self.transactions.clear()
        self.requests.clear()
        self.connections.clear()
        self.dns_queries.clear()
        self.sessions.clear()
        self.uploads.clear()
        self.drop_receipts = False
        self.corrupt_downloads = False
        self.download_bytes = self._default_download_bytes
        self.dns_nxdomain.clear()
        self.dns_servfail.clear()
