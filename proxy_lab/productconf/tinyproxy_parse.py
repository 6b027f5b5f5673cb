"""Parsing a tinyproxy.conf (tinyproxy 1.11) into a lossless ProductConfig.

tinyproxy's rules (src/conf.c, tinyproxy.conf(5)): one directive per line, `Name value...`; names
compare case-insensitively; a line whose first non-blank character is `#` is a comment, and there
are no trailing comments (`Port 8888 # x` is a syntax error); a value in double quotes may hold
blanks. A directive given twice keeps its last value, except the list directives (`Listen`,
`Allow`/`Deny`, `ConnectPort`, `BasicAuth`, `ErrorFile`, `AddHeader`, `Upstream`...).
The `Filter` file is read too (its patterns as filter.c reads them: up to the first blank or
unescaped `#` of each line), so the access evaluator can apply it.
"""

from __future__ import annotations

from pathlib import Path

from proxy_lab.productconf.model import (
    ConfigFile,
    Directive,
    ProductConfig,
    ProductConfigError,
    Reference,
    bare,
    split_lines,
    token_spans,
)
from proxy_lab.productconf.source import read_lines

FILE_DIRECTIVES = {"filter": "filter file", "defaulterrorfile": "default error page", "statfile": "statistics page"}


def tokens(line: str) -> list[str]:
    """Blank-separated words of one line; a double-quoted value is one word (quotes kept)."""
    return [line[a:b] for a, b in token_spans(line)]


def unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def filter_patterns(lines: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns of a filter file as tinyproxy's filter.c reads them."""
    out: list[str] = []
    for raw in lines:
        line = bare(raw)
        end = 0
        while end < len(line) and not line[end].isspace():
            if line[end] == "#" and (end == 0 or line[end - 1] != "\\"):
                break
            end += 1
        if line[:end]:
            out.append(line[:end])
    return tuple(out)


def parse_tinyproxy(path: Path, text: str | None = None) -> ProductConfig:
    """Parse `path` (or `text` standing for its content)."""
    path = Path(path).absolute()
    lines, encoding = read_lines(path) if text is None else (split_lines(text), "utf-8")
    directives: list[Directive] = []
    references: list[Reference] = []
    values: dict[str, tuple[str, ...]] = {}
    for number, raw in enumerate(lines, 1):
        words = tokens(bare(raw))
        if not words or words[0].startswith("#"):
            continue
        d = Directive(path, number, number, words[0], tuple(words[1:]))
        directives.append(d)
        named: tuple[str, str] | None = None
        if d.key in FILE_DIRECTIVES and d.args:
            named = (unquote(d.args[0]), FILE_DIRECTIVES[d.key])
        elif d.key == "errorfile" and len(d.args) >= 2:
            named = (unquote(d.args[1]), f"error page for status {d.args[0]}")
        if named is None:
            continue
        file = Path(named[0]) if Path(named[0]).is_absolute() else path.parent / named[0]
        references.append(Reference(str(file), named[1], d, file.is_file()))
        if d.key == "filter" and file.is_file():
            try:
                flines, _ = read_lines(file, "filter file")
            except ProductConfigError:
                continue
            values[str(file)] = filter_patterns(flines)
    main = ConfigFile(path, lines, tuple(directives), encoding)
    return ProductConfig("tinyproxy", main, (), tuple(directives), tuple(references), values)
