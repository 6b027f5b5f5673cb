"""The wire transcript of one probe, kept in its Evidence and echoed to `on_event` as it happens.

Line prefixes: `>` sent to the proxy (or, direct, to the origin), `<` received from it, `>>` and `<<`
the same inside the tunnel, `!` an event (TLS results, resets, timing). Credentials never appear:
`Proxy-Authorization: Basic ****`.
"""

from __future__ import annotations

from collections.abc import Callable

from proxy_lab.outcomes import Evidence

MAX_LINE = 300


class Transcript:
    def __init__(self, evidence: Evidence, *, label: str = "", on_event: Callable[[str], None] | None = None):
        self.evidence = evidence
        self.label = label
        self.on_event = on_event

    def line(self, text: str) -> None:
        text = text if len(text) <= MAX_LINE else text[: MAX_LINE - 3] + "..."
        self.evidence.transcript.append(text)
        if self.on_event is not None:
            self.on_event(f"{self.label} {text}" if self.label else text)

    def sent(self, text: str, *, tunnel: bool = False) -> None:
        self.line((">> " if tunnel else "> ") + text)

    def received(self, text: str, *, tunnel: bool = False) -> None:
        self.line(("<< " if tunnel else "< ") + text)

    def note(self, text: str) -> None:
        self.line("! " + text)
