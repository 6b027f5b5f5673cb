"""Apache htpasswd lines for the real products' user files, without the `htpasswd` tool.

- `apr1_line`: `user:$apr1$salt$hash`, Apache's MD5 variant (apr_md5.c, the md5crypt of FreeBSD with
  the magic `$apr1$`), read by Squid's `basic_ncsa_auth`; `openssl passwd -apr1` gives the same.
- `sha1_line`: `user:{SHA}base64(sha1(password))`, one of the two formats mitmproxy's
  `proxyauth=@file` reads (mitmproxy/utils/htpasswd.py; the other is bcrypt).

These files hold lab passwords for lab proxies; MD5 and SHA-1 are what those products accept, not a
recommendation.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(value: int, n: int) -> str:
    out = []
    for _ in range(n):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return "".join(out)


def md5_crypt(password: str, salt: str, magic: str = "$apr1$") -> str:
    """md5crypt as in apr_md5.c / FreeBSD crypt-md5.c; `magic` is `$apr1$` (Apache) or `$1$`."""
    pw = password.encode("utf-8")
    salt_b = salt.encode("ascii")[:8]
    magic_b = magic.encode("ascii")
    alt = hashlib.md5(pw + salt_b + pw).digest()
    ctx = pw + magic_b + salt_b
    for remaining in range(len(pw), 0, -16):
        ctx += alt[: min(16, remaining)]
    i = len(pw)
    while i:  # bounded: one step per bit of len(pw)
        ctx += b"\0" if i & 1 else pw[:1]
        i >>= 1
    final = hashlib.md5(ctx).digest()
    for i in range(1000):  # the algorithm's fixed 1000 rounds
        c = pw if i & 1 else final
        if i % 3:
            c += salt_b
        if i % 7:
            c += pw
        c += final if i & 1 else pw
        final = hashlib.md5(c).digest()
    encoded = "".join(
        _to64(final[a] << 16 | final[b] << 8 | final[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5))
    )
    encoded += _to64(final[11], 2)
    return f"{magic}{salt_b.decode('ascii')}${encoded}"


def _check_user(user: str) -> None:
    if not user or any(c in user for c in ":\r\n"):
        raise ValueError(f"user name {user!r} cannot go in an htpasswd file (empty, or has ':' or a line break)")


def apr1_line(user: str, password: str, salt: str | None = None) -> str:
    _check_user(user)
    salt = salt or "".join(secrets.choice(_ITOA64) for _ in range(8))
    return f"{user}:{md5_crypt(password, salt)}"


def sha1_line(user: str, password: str) -> str:
    _check_user(user)
    digest = base64.b64encode(hashlib.sha1(password.encode("utf-8")).digest()).decode("ascii")
    return f"{user}:{{SHA}}{digest}"
