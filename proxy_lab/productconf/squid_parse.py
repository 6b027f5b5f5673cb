"""Parsing a squid.conf (Squid 5) into a lossless ProductConfig.

Squid's own rules, from its parser (src/cache_cf.cc, src/ConfigParser.cc) and squid.conf.documented:
- a line ending in a backslash continues on the next line (whose leading blanks are dropped);
- a line whose first non-blank character is `#` is a comment, and so is the rest of a line from a
  token that starts with `#`;
- directive names are case-sensitive;
- `include PATH...` reads each file (shell globs allowed) in place, at most 16 levels deep. A
  relative path is taken from the including file's directory (an assumption: Squid takes it from
  its working directory, which the lab sets to the configuration's);
- in an `acl` line, a value in double quotes names a file of values, one per line (`#` comments),
  unless `configuration_includes_quoted_values on` is in force, when quotes make a plain value and
  `parameters("FILE")` names a file.
Files the configuration names (acl lists, helper programs and their files, TLS certificates and keys)
become `Reference`s; a missing one is recorded, not raised: validation names it.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass, field
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

MAX_INCLUDE_DEPTH = 16  # ConfigParser.cc: "includes are nested too deeply (>16)"

# Directives that start a helper program: the program is the first argument that is a path.
HELPER_DIRECTIVES = (
    "auth_param", "external_acl_type", "url_rewrite_program", "store_id_program", "sslcrtd_program",
    "sslcrtvalidator_program", "sslpassword_program", "logfile_daemon", "unlinkd_program", "pinger_program",
    "diskd_program", "mail_program",
)  # fmt: skip
# http_port/https_port options naming files read at start (squid.conf.documented, http_port).
PORT_FILE_OPTIONS = (
    "tls-cert", "tls-key", "cert", "key", "cafile", "tls-cafile", "capath", "clientca", "tls-dh", "dhparams",
    "crlfile", "tls-crlfile", "sslcafile", "sslcapath",
)  # fmt: skip
# Files Squid reads at start, named by the directive's first argument.
READ_FILE_DIRECTIVES = {"mime_table": "MIME table", "err_page_stylesheet": "error page style sheet"}
READ_DIR_DIRECTIVES = {"error_directory": "error page directory", "icon_directory": "icon directory"}


def tokens(logical: str, quoted_values: bool) -> list[str]:
    """Squid's tokens of one logical line, quotes kept as written; a token starting `#` ends the line."""
    return [logical[a:b] for a, b in token_spans(logical, "\"'" if quoted_values else "")]


def logical_lines(lines: tuple[str, ...]) -> Iterator[tuple[int, int, str]]:
    """(first line, last line, text) of each logical line: continuations joined, endings dropped."""
    i = 0
    while i < len(lines):
        first = i
        text = bare(lines[i]).rstrip("\r")
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + bare(lines[i]).rstrip("\r").lstrip(" \t")
        yield first + 1, i + 1, text
        i += 1


def file_token(token: str, quoted_values: bool) -> str | None:
    """The file named by an acl value token (`"FILE"`, or `parameters("FILE")` with quoted values)."""
    if not quoted_values and token[:1] in "\"'":
        return token[1:].split(token[0], 1)[0]
    if quoted_values and token.startswith("parameters(") and token.endswith(")"):
        return token[len("parameters(") : -1].strip().strip("\"'")
    return None


def read_values(lines: tuple[str, ...]) -> tuple[str, ...]:
    """The values of an acl file: one per line, blank lines and `#` comments skipped (strtokFile)."""
    out: list[str] = []
    for raw in lines:
        words: list[str] = []
        for w in bare(raw).split():
            if w.startswith("#"):
                break
            words.append(w)
        if words:
            out.append(" ".join(words))
    return tuple(out)


@dataclass
class _State:
    includes: list[ConfigFile] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    file_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    included_by: dict[Path, Directive] = field(default_factory=dict)
    quoted_values: bool = False
    stack: list[Path] = field(default_factory=list)


def _resolve(name: str, base: Path) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def expand_include(pattern: str, base: Path) -> list[Path]:
    """The files an `include` argument names, in the order Squid reads them (glob(3) sorts)."""
    full = _resolve(pattern, base)
    if glob.has_magic(str(full)):
        return [Path(m) for m in sorted(glob.glob(str(full)))]
    return [full] if full.exists() else []


def _ref(state: _State, name: str, what: str, d: Directive, *, is_dir: bool = False, base: Path | None = None) -> str:
    path = _resolve(name, base or d.path.parent) if "${" not in name else Path(name)
    exists = path.is_dir() if is_dir else path.is_file()
    state.references.append(Reference(str(path), what, d, exists))
    return str(path)


def _acl_files(state: _State, d: Directive) -> None:
    if len(d.args) < 3:
        return
    for tok in d.args[2:]:
        name = file_token(tok, d.quoted_values)
        if name is None:
            continue
        path = _ref(state, name, f"list of acl {d.args[0]}", d)
        if path not in state.file_values and Path(path).is_file():
            try:
                lines, _ = read_lines(Path(path), f"list of acl {d.args[0]}")
            except ProductConfigError:
                continue
            state.file_values[path] = read_values(lines)


def _helper(state: _State, d: Directive) -> None:
    """The helper program a directive starts and the absolute paths it is given (its files)."""
    args = list(d.args)
    if d.key == "auth_param":
        if len(args) < 3 or args[1] != "program":
            return
        args = args[2:]
    elif d.key == "external_acl_type":
        args = args[1:]
        while args and not args[0].startswith("/"):
            args.pop(0)  # options and the FORMAT before the helper's path
    if not args or not args[0].startswith("/"):
        return
    program = Path(args[0]).name
    state.references.append(Reference(args[0], f"helper program {program}", d, Path(args[0]).is_file()))
    skip_next = False
    for a in args[1:]:
        if skip_next or not a.startswith("/"):
            skip_next = d.key == "sslcrtd_program" and a == "-s"  # the certificate database: moved by the lab
            continue
        what = "password file" if program.startswith(("basic_ncsa_auth", "digest_file_auth")) else "file"
        _ref(state, a, f"{what} of {program}", d)


def _port_files(state: _State, d: Directive) -> None:
    for opt in d.args[1:]:
        key, _, value = opt.partition("=")
        if value and key in PORT_FILE_OPTIONS:
            _ref(state, value, f"{key}= of {d.name} {d.args[0]}", d, is_dir=key in ("capath", "sslcapath"))


def _record(state: _State, d: Directive) -> None:
    key = d.key
    if key == "acl":
        _acl_files(state, d)
    elif key in HELPER_DIRECTIVES:
        _helper(state, d)
    elif key in ("http_port", "https_port") and d.args:
        _port_files(state, d)
    elif key in READ_FILE_DIRECTIVES and d.args:
        _ref(state, d.args[0], READ_FILE_DIRECTIVES[key], d)
    elif key in READ_DIR_DIRECTIVES and d.args:
        _ref(state, d.args[0], READ_DIR_DIRECTIVES[key], d, is_dir=True)


def _include(state: _State, d: Directive) -> None:
    if len(state.stack) > MAX_INCLUDE_DEPTH:
        raise ProductConfigError(
            f"{d.where}: include {' '.join(d.args)}: includes are nested more than {MAX_INCLUDE_DEPTH} deep "
            "(Squid's limit)", path=d.path, line=d.line,
        )  # fmt: skip
    for pattern in d.args:
        matches = expand_include(pattern, d.path.parent)
        if not matches:
            state.references.append(Reference(str(_resolve(pattern, d.path.parent)), "included file", d, False))
            continue
        for path in matches:
            if path in state.stack:
                chain = " -> ".join(str(p) for p in [*state.stack, path])
                raise ProductConfigError(f"{d.where}: include {pattern} includes itself ({chain})", path=d.path, line=d.line)
            state.references.append(Reference(str(path), "included file", d, True))
            state.included_by[path] = d
            lines, encoding = read_lines(path, f"file included at {d.where}")
            _parse_file(state, path, lines, encoding)


def _parse_file(state: _State, path: Path, lines: tuple[str, ...], encoding: str) -> ConfigFile:
    # an included file gets its place now, so that the include order is the order files are first read
    index = len(state.includes) if state.stack else None
    state.stack.append(path)
    own: list[Directive] = []
    if index is not None:
        state.includes.append(ConfigFile(path, lines, (), encoding))
    for first, last, logical in logical_lines(lines):
        toks = tokens(logical, state.quoted_values)
        if not toks:
            continue
        d = Directive(path, first, last, toks[0], tuple(toks[1:]), state.quoted_values)
        own.append(d)
        state.directives.append(d)
        if d.key == "configuration_includes_quoted_values" and d.args:
            state.quoted_values = d.args[0] == "on"
        elif d.key == "include":
            _include(state, d)
        else:
            _record(state, d)
    f = ConfigFile(path, lines, tuple(own), encoding)
    if index is not None:
        state.includes[index] = f
    state.stack.pop()
    return f


def parse_squid(path: Path, text: str | None = None) -> ProductConfig:
    """Parse `path` (or `text` standing for its content) with every file it includes."""
    path = Path(path).absolute()
    lines, encoding = read_lines(path) if text is None else (split_lines(text), "utf-8")
    state = _State()
    main = _parse_file(state, path, lines, encoding)
    return ProductConfig(
        "squid", main, tuple(state.includes), tuple(state.directives), tuple(state.references),
        dict(state.file_values), dict(state.included_by),
    )  # fmt: skip
