"""Proxy URLs: `http://[user:pass@]host:port` parsed once for every command and setting that takes one.

`parse_proxy_url` is the one parser (the `url` target, `check --proxy`, the probe and the lab
proxy's `--upstream`, `proxy_lab.proxy.chain.UpstreamProxy.parse`). A URL it refuses is named in the
error with its password replaced by `***` (`redact`): a password typed on a command line must not
reach a terminal, a log or a CI transcript.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from proxy_lab.errors import ConfigError


def redact(url: str) -> str:
    """`url` with the password of its user information replaced by `***` (the user name is kept)."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, sep, userinfo = head.partition("://")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}{':***' if colon else ''}@{tail}"


def parse_proxy_url(url: str, *, what: str = "proxy URL") -> tuple[str, int, str | None, str | None]:
    """`http://[user:pass@]host:port` -> (host, port, user, password); ConfigError otherwise, naming
    the URL as `what` with its password hidden. A user without a password has the password None."""
    shown = repr(redact(url))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what} {shown} is malformed: {_redacted_reason(exc, url)}") from None
    if parts.scheme.startswith("socks"):
        raise ConfigError(
            f"{what} {shown} is a SOCKS proxy: the meter supports HTTP CONNECT only (guide, Proxy: "
            "'Socket Secure (SOCKS) protocol is not supported')"
        )
    if parts.scheme != "http":
        raise ConfigError(f"{what} {shown}: expected http://[user:pass@]host:port")
    if not parts.hostname or port is None or port == 0:
        raise ConfigError(f"{what} {shown}: expected http://[user:pass@]host:port with a host and a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{what} {shown}: expected http://[user:pass@]host:port, with no path")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname, port, user, password


def _redacted_reason(exc: ValueError, url: str) -> str:
    """urlsplit's reason, which may quote the URL's netloc, with the password taken out."""
    reason = str(exc)
    password = _password_text(url)
    return reason.replace(password, "***") if password else reason


def _password_text(url: str) -> str:
    """The raw password text of `url`'s user information, or "" (found without parsing the port)."""
    head, at, _ = url.rpartition("@")
    if not at:
        return ""
    return head.partition("://")[2].partition(":")[2]
