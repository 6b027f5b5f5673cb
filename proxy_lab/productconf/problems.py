"""What a fix starts from (`Problem`: a check's finding) and what it gives back (`Fix`, `Unfixed`).

A Problem is one finding of a check: the cause id of `proxy_lab.advice` (`allow_ports`,
`exclusions`, `deny_hosts`, `tls_inspect`, `credentials`, ...) and the endpoints that failed that
way. `Problem.of(finding)` takes a `proxy_lab.check.Finding` (or anything with `.cause.id`,
`.endpoints` and `.evidence`). The causes a configuration file can fix are listed in `FIXABLE`; any
other is reported as `Unfixed`, with the remedy `proxy_lab.advice` gives for it, never papered over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from proxy_lab.advice import CAUSES, Scope
from proxy_lab.productconf.model import Change

# Refusals of a CONNECT: the access rules of the file decide them.
REFUSALS = frozenset({"allow_ports", "port_closed", "port_reset", "exclusions", "deny_hosts", "allow_hosts", "refused"})
FIXABLE = REFUSALS | {"tls_inspect", "throttle"}
_DEFAULT_PORTS = {"http": 80, "https": 443, "tcp": 0}


@dataclass(frozen=True)
class Problem:
    """One finding: its cause id and the endpoint URLs that failed that way."""

    cause: str
    endpoints: tuple[str, ...] = ()
    seen: str = ""

    @classmethod
    def of(cls, finding: Any) -> Problem:
        """From a `proxy_lab.check.Finding` (duck-typed: `.cause.id`, `.endpoints`, `.evidence`)."""
        if isinstance(finding, Problem):
            return finding
        return cls(str(finding.cause.id), tuple(finding.endpoints), str(getattr(finding, "evidence", "")))

    def targets(self) -> list[tuple[str, int]]:
        """(host, port) of each endpoint the meter tunnels to (DNS queries go direct: none)."""
        out: list[tuple[str, int]] = []
        for url in self.endpoints:
            try:
                parts = urlsplit(url)
                port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
            except ValueError:
                continue
            if parts.hostname and port and (parts.hostname, port) not in out:
                out.append((parts.hostname, port))
        return out

    def remedy(self) -> str:
        cause = CAUSES.get(self.cause, CAUSES["other"])
        return cause.remedy_for(Scope.of_urls(self.endpoints, self.seen))


@dataclass(frozen=True)
class Unfixed:
    """A cause the fix leaves alone, and why (what to do instead)."""

    cause: str
    reason: str


@dataclass(frozen=True)
class Fix:
    """The user's file with the smallest change that lets the meter through.

    `text`: the fixed main file; `changes`: each change with its reason (line numbers of the user's
    file; every inserted block starts with one comment line quoting the guide); `diff`: unified diffs
    `--- yours/` `+++ fix/`; `files`: new files the fixed configuration names, to write next to it
    (path -> text; a new tinyproxy filter file, a list of hosts); `fixed`: the causes addressed;
    `unfixed`: the causes this file cannot fix, with what to do.
    """

    text: str
    changes: tuple[Change, ...] = ()
    diff: str = ""
    files: Mapping[Path, str] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()
    unfixed: tuple[Unfixed, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.files)


def not_fixable(p: Problem) -> Unfixed:
    """The cause as the fix reports it when nothing in the file is changed for it."""
    if p.cause in ("credentials",):
        return Unfixed(p.cause, "the meter's proxy credentials: nothing in the file to change; " + p.remedy())
    if p.cause in ("auth_schemes", "challenge_style"):
        return Unfixed(p.cause, "proxy authentication the meter cannot answer (Basic only): not changed here, as it needs "
                                "your user store or an exemption you decide; " + p.remedy())  # fmt: skip
    return Unfixed(p.cause, "not a rule of this file the fix changes: " + p.remedy())


def sendpro_name(taken: set[str], base: str) -> str:
    """A name for a new ACL that the configuration does not use yet."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name
