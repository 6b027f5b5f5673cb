"""Errors split by who is to blame (after h11's Local/RemoteProtocolError).

`RemoteProtocolError` means the peer broke the protocol; it carries the HTTP status a proxy
should answer with (400, 405, 408, 414, 431, ...). `LocalProtocolError` means we misused an API.
`ConfigError` blames the user's input; `SetupError` and `TargetSkipped` say why a scenario run has
no outcomes (the lab or target did not start; the target cannot express the scenario). Everything
else uses built-in exceptions. This module imports nothing of the package: anything may import it.
"""

from __future__ import annotations


class ProtocolError(Exception):
    def __init__(self, msg: str, *, error_status_hint: int = 400) -> None:
        super().__init__(msg)
        self.error_status_hint = error_status_hint


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class ConfigError(ValueError):
    """A scenario file, CLI option or setting is wrong; the message names which and what was expected."""


class SetupError(Exception):
    """The lab or a target could not be set up: reported apart from outcomes, never as one."""


class TargetSkipped(Exception):
    """The target cannot express a scenario; the message says what it lacks (reported as skipped)."""
