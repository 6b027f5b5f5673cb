"""Reading a configuration file as text, or saying in one line why it cannot be.

The only file access of the parsers goes through `read_lines`: a file that is missing, unreadable,
a directory, or not text (a NUL byte) raises `ProductConfigError` naming it. Text is UTF-8, or
Latin-1 when it is not valid UTF-8 (an old squid.conf with accented comments); either way the
`ConfigFile` gives the same bytes back.
"""

from __future__ import annotations

from pathlib import Path

from proxy_lab.productconf.model import ProductConfigError, split_lines

MAX_BYTES = 16 * 1024 * 1024  # squid.conf.documented is 0.35 MB; anything this large is not a config


def decode(data: bytes, path: Path, what: str) -> tuple[tuple[str, ...], str]:
    """Physical lines and the encoding that gives `data` back; raises for what is not text."""
    if (nul := data.find(b"\0")) >= 0:
        raise ProductConfigError(f"{path}: the {what} is not a text file (a NUL byte at offset {nul})", path=path)
    try:
        return split_lines(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        return split_lines(data.decode("latin-1")), "latin-1"


def read_lines(path: Path, what: str = "configuration file") -> tuple[tuple[str, ...], str]:
    """The file's physical lines (endings kept) and its encoding; raises ProductConfigError."""
    try:
        if path.is_dir():
            raise ProductConfigError(f"{path}: the {what} is a directory, not a file", path=path)
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise ProductConfigError(f"{path}: the {what} does not exist", path=path) from exc
    except OSError as exc:
        raise ProductConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}", path=path) from exc
    if len(data) > MAX_BYTES:
        raise ProductConfigError(f"{path}: the {what} is larger than {MAX_BYTES // (1024 * 1024)} MB: not a configuration file", path=path)
    return decode(data, path, what)
