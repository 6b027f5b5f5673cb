"""Basic proxy authentication (RFC 7617) for the lab proxy: parse `Proxy-Authorization`, check it, challenge.

Parsing is sans-IO and never raises: anything malformed is an `InvalidCredentials` with the reason,
which the proxy answers with 407 like a wrong password. Checking uses `hmac.compare_digest` and
visits every configured user. Nothing of the header's value ever goes into a `why` (which the
proxy logs and records): not the password, not the token, not an unknown user name, and not even
the scheme unless it is one of the registered names in `KNOWN_SCHEMES` (a client that sends its
password as the whole header value would otherwise have it logged as the "scheme"). A `why` names
only configured users, lengths and fixed words.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.responses import quoted

_TOKEN68 = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")

# Authentication scheme names a `why` may repeat, compared without case: the IANA HTTP
# Authentication Scheme Registry (https://www.iana.org/assignments/http-authschemes), plus the
# unregistered ones proxies and clients commonly send (NTLM, Kerberos). Anything else is a value
# of the client's making, perhaps its password, and is only counted.
KNOWN_SCHEMES = {
    s.lower(): s
    for s in (
        "Basic", "Bearer", "Concealed", "Digest", "DPoP", "GNAP", "HOBA", "Mutual", "Negotiate", "OAuth",
        "PrivateToken", "SCRAM-SHA-1", "SCRAM-SHA-256", "vapid", "NTLM", "Kerberos",
    )
}  # fmt: skip


@dataclass(frozen=True)
class Credentials:
    """A user-id and password decoded from `Basic <base64>`."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        # RFC 7617 §2: "a user-id containing a colon character is invalid"; it cannot be empty here.
        if not self.user or ":" in self.user:
            raise ValueError("Credentials: the user-id must be non-empty and contain no ':'")


@dataclass(frozen=True)
class InvalidCredentials:
    """A `Proxy-Authorization` field that cannot carry Basic credentials; `why` is safe to log."""

    why: str


def parse_proxy_authorization(
    value: str, *, accept_lowercase_scheme: bool = True
) -> Credentials | InvalidCredentials:
    """Decode `Basic <token68>` into user-id and password.

    RFC 7617 §2: the scheme name is case-insensitive (`basic` is `Basic`), unless
    `accept_lowercase_scheme` is False to emulate proxies that insist on `Basic`. The user-pass is
    split on the first colon ("the user-id ... cannot contain a colon"), so passwords may contain
    ':'. The octets are decoded as UTF-8 (the only charset RFC 7617 §2.1 defines).
    """
    parts = value.strip().split(None, 1)
    if not parts:
        return InvalidCredentials("empty Proxy-Authorization field")
    scheme = parts[0]
    if scheme.lower() != "basic":
        return InvalidCredentials(f"Proxy-Authorization uses {_scheme_named(scheme)}, not Basic")
    if scheme != "Basic" and not accept_lowercase_scheme:
        return InvalidCredentials(
            f"Proxy-Authorization scheme spelled {scheme!r}; this proxy accepts only 'Basic'"
        )
    if len(parts) < 2:
        return InvalidCredentials("Basic scheme without credentials")
    token = parts[1].strip()
    if not _TOKEN68.match(token):
        return InvalidCredentials("Basic credentials are not a base64 token")
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return InvalidCredentials("Basic credentials are not valid base64")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidCredentials("Basic credentials are not UTF-8 (Latin-1 client?)")
    user, sep, password = text.partition(":")
    if not sep:
        return InvalidCredentials("Basic credentials have no ':' between user-id and password")
    if not user:
        return InvalidCredentials("Basic credentials have an empty user-id")
    return Credentials(user, password)


def _scheme_named(scheme: str) -> str:
    """A scheme for a log line: its registered name, or only its length when it is not a known one."""
    known = KNOWN_SCHEMES.get(scheme.lower())
    if known is not None:
        return f"scheme {known!r}"
    return f"an unknown scheme ({len(scheme)} characters)"


@dataclass(frozen=True)
class AuthResult:
    """The proxy's decision on one request: the configured user name, or None and why not."""

    user: str | None
    why: str

    @property
    def ok(self) -> bool:
        return self.user is not None


class BasicAuth:
    """The lab proxy's user table and its Basic challenge.

    `username_case_sensitive=False` folds the case of user names (as directory-backed proxies do);
    passwords are always compared exactly.
    """

    def __init__(
        self,
        users: Mapping[str, str],
        realm: str = "proxy-lab",
        *,
        username_case_sensitive: bool = True,
        accept_lowercase_scheme: bool = True,
        close_after_407: bool = False,
    ) -> None:
        for name in users:
            if not name or ":" in name:
                raise ValueError(f"user name {name!r}: must be non-empty and contain no ':' (RFC 7617 §2)")
        self.users = dict(users)
        self.realm = realm
        self.username_case_sensitive = username_case_sensitive
        self.accept_lowercase_scheme = accept_lowercase_scheme
        self.close_after_407 = close_after_407

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def password_of(self, user: str) -> tuple[str, str] | None:
        """(configured name, password) of `user`, compared without case as NTLM does; None if unknown."""
        folded = user.casefold()
        for name, password in self.users.items():
            if name.casefold() == folded:
                return name, password
        return None

    def _key(self, name: str) -> bytes:
        return (name if self.username_case_sensitive else name.casefold()).encode("utf-8")

    def verify(self, value: str | None) -> AuthResult:
        """Check one `Proxy-Authorization` value (None when the header is absent)."""
        if value is None:
            return AuthResult(None, "no Proxy-Authorization header")
        parsed = parse_proxy_authorization(value, accept_lowercase_scheme=self.accept_lowercase_scheme)
        if isinstance(parsed, InvalidCredentials):
            return AuthResult(None, parsed.why)
        return self.check(parsed.user, parsed.password)

    def check(self, user: str, password: str) -> AuthResult:
        """Check a user name and password (from Basic, or from SOCKS5 RFC 1929 sub-negotiation)."""
        given = self._key(user)
        folded = user.casefold().encode("utf-8")
        matched: str | None = None
        case_only: str | None = None
        expected = b"\x00" * 32  # compared against when no user matched, so timing does not tell
        for name, stored in self.users.items():
            # Every user is visited and both comparisons made, in constant time, whatever matches (no
            # early exit, no skipped comparison), so timing does not tell whether a user name exists.
            exact = hmac.compare_digest(self._key(name), given)
            same_but_case = hmac.compare_digest(name.casefold().encode("utf-8"), folded)
            if exact:
                matched, expected = name, stored.encode("utf-8")
            elif same_but_case:
                case_only = name
        password_ok = hmac.compare_digest(expected, password.encode("utf-8"))
        if matched is None:
            if case_only is not None:
                return AuthResult(
                    None,
                    f"user name matches configured {case_only!r} only when case is ignored; names are case-sensitive here",
                )
            return AuthResult(None, f"unknown user ({len(user)} characters; configured: {len(self.users)} user(s))")
        if not password_ok:
            return AuthResult(None, f"wrong password for user {matched!r} (passwords are case-sensitive)")
        return AuthResult(matched, f"user {matched!r} authenticated")

    def challenge(self, why: str) -> Refusal:
        """`407 Proxy Authentication Required` with `Proxy-Authenticate: Basic realm="..."`.

        RFC 9110 §15.5.8: "The proxy MUST send a Proxy-Authenticate header field (Section 11.7.1)
        containing a challenge applicable to that proxy for the request." The connection stays open
        for the retry (RFC 9110 §11.7.1: "The client MAY repeat the request with a new or replaced
        Proxy-Authorization header field") unless `close_after_407`.
        """
        body = (
            b"<html><head><title>407 Proxy Authentication Required</title></head>\n"
            b"<body><h1>407 Proxy Authentication Required</h1>\n"
            b"<p>This proxy requires a user name and password (Basic).</p></body></html>\n"
        )
        return Refusal(
            407,
            "Proxy Authentication Required",
            (
                ("Server", "proxy-lab"),
                ("Proxy-Authenticate", f"Basic realm={quoted(self.realm)}"),
                ("Content-Type", "text/html"),
            ),
            body,
            why=f"authentication: {why}",
            keep_alive=not self.close_after_407,
        )
