"""Errors split by who is to blame (after h11's Local/RemoteProtocolError).

`RemoteProtocolError` means the peer broke the protocol; it carries the HTTP status a proxy
should answer with (400, 405, 408, 414, 431, ...). `LocalProtocolError` means we misused an API.
Everything else uses built-in exceptions.
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
