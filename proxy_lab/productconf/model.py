"""The lossless model of a product's configuration file: every line kept, directives found in it.

A `ConfigFile` holds a file's physical lines exactly as read (line endings included), so
`text(model)` gives the file back byte for byte (`ConfigFile.data()` in its own encoding), and the
`Directive`s found in it, each pointing at the line(s) it came from. A `ProductConfig` is what a
product reads: the main file, the files it includes (Squid), every directive in the order the
product applies them, and the files the configuration names (`Reference`), found or not.

`Change` is one edit of one line (replaced, commented out or inserted) with the reason for it: the
lab rewrite and the fix both return their edits as Changes, and `apply_changes` turns a file and its
Changes into the new text. Pure: no file is read here (see `squid_parse`, `tinyproxy_parse`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from proxy_lab.errors import ConfigError

Product = Literal["squid", "tinyproxy"]
PRODUCTS: tuple[Product, ...] = ("squid", "tinyproxy")

_LINES = re.compile(r"[^\n]*\n|[^\n]+")


class ProductConfigError(ConfigError):
    """A configuration file cannot be used: the message names the file, the line or directive, and why
    (exit 2). `path` and `line` say where, when known."""

    def __init__(self, message: str, *, path: Path | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


def split_lines(text: str) -> tuple[str, ...]:
    """Physical lines with their endings; only `\\n` ends a line (a `\\r` before it stays in the line)."""
    return tuple(_LINES.findall(text))


def bare(line: str) -> str:
    """A physical line without its line ending."""
    return line.rstrip("\r\n")


@dataclass(frozen=True)
class Directive:
    """One directive: its name and arguments as the product reads them, and where it was written.

    `args` keep quotes as written (`"/etc/squid/blocked.txt"`); a trailing comment is not an argument.
    `line`..`last_line` span continuation lines (Squid's trailing backslash).
    """

    path: Path
    line: int
    last_line: int
    name: str
    args: tuple[str, ...]
    quoted_values: bool = False  # Squid: `configuration_includes_quoted_values on` was in force

    @property
    def key(self) -> str:
        """The name as the product compares it (tinyproxy ignores case; Squid's names are lower case)."""
        return self.name.lower()

    @property
    def where(self) -> str:
        return f"{self.path} line {self.line}"

    def __str__(self) -> str:
        return " ".join((self.name, *self.args))


@dataclass(frozen=True)
class ConfigFile:
    """One file, losslessly: its physical lines and the directives written in it."""

    path: Path
    lines: tuple[str, ...]
    directives: tuple[Directive, ...] = ()
    encoding: str = "utf-8"

    def text(self) -> str:
        return "".join(self.lines)

    def data(self) -> bytes:
        return self.text().encode(self.encoding)

    def line(self, number: int) -> str:
        """Physical line `number` (1-based) without its ending."""
        return bare(self.lines[number - 1])

    @property
    def newline(self) -> str:
        """The line ending this file mostly uses (for lines added to it)."""
        crlf = sum(1 for line in self.lines if line.endswith("\r\n"))
        return "\r\n" if crlf * 2 > len(self.lines) else "\n"


@dataclass(frozen=True)
class Reference:
    """A file the configuration names: an acl list, a password file, a helper, a CA, a filter..."""

    path: str  # as named (absolute once resolved by the parser)
    what: str  # e.g. "password file of basic_ncsa_auth", "filter file"
    directive: Directive
    exists: bool


@dataclass(frozen=True)
class ProductConfig:
    """A product's whole configuration: the main file, the files it includes, the directives in the
    order the product applies them, and the files it names."""

    product: Product
    main: ConfigFile
    includes: tuple[ConfigFile, ...] = ()  # Squid: every included file, in the order first read
    directives: tuple[Directive, ...] = ()  # includes expanded where they are included
    references: tuple[Reference, ...] = ()
    file_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # acl "file" -> its values
    included_by: Mapping[Path, Directive] = field(default_factory=dict)  # included file -> its include line

    @property
    def path(self) -> Path:
        return self.main.path

    @property
    def files(self) -> tuple[ConfigFile, ...]:
        return (self.main, *self.includes)

    def file(self, path: Path) -> ConfigFile:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(path)

    def named(self, *keys: str) -> list[Directive]:
        """Directives with any of these names (compared as the product does), in applied order."""
        return [d for d in self.directives if d.key in keys]

    def in_main(self, d: Directive) -> Directive:
        """The main file's directive that brings `d` in: `d` itself, or the include line of its file."""
        while d.path != self.main.path:
            d = self.included_by[d.path]
        return d

    @property
    def missing(self) -> tuple[Reference, ...]:
        return tuple(r for r in self.references if not r.exists)


def text(model: ProductConfig | ConfigFile) -> str:
    """The main file's text, exactly as read."""
    return (model.main if isinstance(model, ProductConfig) else model).text()


@dataclass(frozen=True)
class Change:
    """One edit of a file and why: `old` is the line replaced (None: `new` is inserted before `line`;
    `line` = number of lines + 1 appends), `new` the line(s) put there (empty: the line is removed)."""

    path: Path
    line: int
    old: str | None
    new: tuple[str, ...]
    why: str

    def __post_init__(self) -> None:
        if self.old is None and not self.new:
            raise ValueError(f"{self.path} line {self.line}: a Change inserts nothing")
        if any("\n" in n for n in self.new):
            raise ValueError(f"{self.path} line {self.line}: a new line holds a line break")

    @property
    def inserted(self) -> bool:
        return self.old is None

    def describe(self) -> str:
        """One line for a report: where, what became what, and why."""
        if self.old is None:
            what = "add " + " / ".join(f"`{n}`" for n in self.new)
            where = f"before line {self.line}"
        else:
            what = f"`{self.old.strip()}` -> " + (" / ".join(f"`{n}`" for n in self.new) or "removed")
            where = f"line {self.line}"
        return f"{self.path.name} {where}: {what} ({self.why})"


def apply_changes(f: ConfigFile, changes: Iterable[Change]) -> str:
    """The text of `f` with `changes` (those for this file) applied; other lines stay byte for byte."""
    replaced: dict[int, Change] = {}
    inserted: dict[int, list[Change]] = {}
    for c in changes:
        if c.path != f.path:
            continue
        if not 1 <= c.line <= len(f.lines) + (1 if c.inserted else 0):
            raise ValueError(f"{f.path}: change at line {c.line} outside 1..{len(f.lines)}")
        if c.inserted:
            inserted.setdefault(c.line, []).append(c)
        elif c.line in replaced:
            raise ValueError(f"{f.path} line {c.line}: changed twice")
        else:
            if bare(f.lines[c.line - 1]) != c.old:
                raise ValueError(f"{f.path} line {c.line}: expected {c.old!r}, found {f.line(c.line)!r}")
            replaced[c.line] = c
    nl = f.newline
    out: list[str] = []
    for n in range(1, len(f.lines) + 2):
        for c in inserted.get(n, ()):
            if n == len(f.lines) + 1 and out and not out[-1].endswith("\n"):
                out[-1] += nl  # the file ended without a line break
            out += [line + nl for line in c.new]
        if n > len(f.lines):
            break
        line = f.lines[n - 1]
        if n in replaced:
            ending = line[len(bare(line)) :]
            out += [new + (ending or nl if i < len(replaced[n].new) - 1 else ending) for i, new in enumerate(replaced[n].new)]
        else:
            out.append(line)
    return "".join(out)


def commented(line: str) -> str:
    """A line turned into a comment, as the lab rewrite and the fix comment out what they disable."""
    return "# " + line


def changed_files(model: ProductConfig, changes: Sequence[Change]) -> dict[Path, str]:
    """Every file of `model` that `changes` touch, with its new text."""
    out: dict[Path, str] = {}
    for f in model.files:
        if any(c.path == f.path for c in changes):
            out[f.path] = apply_changes(f, changes)
    return out


def token_spans(line: str, quotes: str = '"') -> list[tuple[int, int]]:
    """(start, end) of each blank-separated token of a line, a token that starts with one of `quotes`
    running to the same quote closing it (a backslash escapes); a token starting with `#` ends it."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t\r\n":
            i += 1
        if i >= n or line[i] == "#":
            return out
        start = i
        if line[i] in quotes:
            quote = line[i]
            i += 1
            while i < n and line[i] != quote:
                i += 2 if line[i] == "\\" else 1
            i = min(i + 1, n)
        while i < n and line[i] not in " \t\r\n":
            i += 1
        out.append((start, i))


def replace_tokens(line: str, replacements: Mapping[int, str], append: Sequence[str] = (), quotes: str = '"') -> str:
    """`line` with its tokens `index -> new text` replaced (0 is the directive's name) and `append`
    added after its last token; blanks and a trailing comment stay as written."""
    spans = token_spans(line, quotes)
    out = line
    if append:
        end = spans[-1][1] if spans else len(out)
        out = out[:end] + "".join(" " + a for a in append) + out[end:]
    for index in sorted(replacements, reverse=True):
        start, end = spans[index]
        out = out[:start] + replacements[index] + out[end:]
    return out
