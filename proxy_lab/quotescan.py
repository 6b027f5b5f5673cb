"""The quotation scanner: every sentence that credits the guide and quotes it must quote it exactly.

Owns `scan(paths)`. A file is read as *prose fragments*: in Python the string literals (implicit
concatenations and f-strings joined, `{...}` for an expression) and each block of comments; in
TOML the string values and each block of comments; in any other text file each paragraph. A
fragment *credits the guide* when it names it ("guide", "FAQ", "Pitney Bowes", or one of the
guide's section titles). Every quotation in such a fragment, text between a pair of quotes
('...', "...", or their typographic forms) of at least two words, must pass
`proxy_lab.guide.is_quoted`, unless it is one of the few `EXCEPTIONS` (quoted text that is not the
guide's: a config line, an RFC, another product's message).

`python -m proxy_lab.quotescan PATH...` prints one misquote a line (`path:line: "text"`) and exits
1 when there is any, 0 when there is none, 2 when a path cannot be read.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from proxy_lab.guide import is_quoted

__all__ = ["EXCEPTIONS", "EXEMPT_FILES", "Fragment", "Misquote", "credits_guide", "fragments", "quotations", "scan"]

# Words that make a fragment a statement about the guide (case-insensitive, whole words).
CREDITS = re.compile(
    r"\b(?:guide|guide's|FAQs?|Pitney Bowes|URL Information|Advanced Network Requirements|"
    r"Required URLs|Recommended URLs|Ports and Communication|What is not supported)\b",
    re.IGNORECASE,
)
# Words just before a quotation that credit another source: a man page, an RFC, a product, a page.
OTHER_SOURCE = re.compile(
    r"\b[\w.-]+\(\d\)|\bRFC\s?\d+|\b(?:Squid|tinyproxy|mitmproxy|curl|OkHttp|Android|Microsoft|"
    r"page title|title|X-Squid-Error)\b",
    re.IGNORECASE,
)
_QUOTES = (
    re.compile(r'"([^"]+)"'),
    re.compile(r"\u201c([^\u201d]+)\u201d"),
    re.compile(r"\u2018([^\u2019]+)\u2019"),
    # Single quotes: the opening one not inside a word (so "guide's" is no quote), the closing
    # one not followed by a letter or digit.
    re.compile(r"(?<![\w'])'(?=\S)(.+?)(?<=\S)'(?!\w)"),
)

# Quoted text on lines that credit the guide but is, knowingly, not the guide's: each with why.
EXCEPTIONS: dict[str, str] = {
    "the meter will NOT work": "proxy-lab's own verdict, quoted where the guide is discussed",
    "the meter will work": "proxy-lab's own verdict, quoted where the guide is discussed",
    "the meter will work with reduced support": "proxy-lab's own verdict",
}
# Files that hold misquotes on purpose, as test data for this scanner.
EXEMPT_FILES: dict[str, str] = {
    "tests/test_quotescan.py": "the scanner's own tests: misquotes are its test data",
    "tests/test_guide.py": "is_quoted's tests: near-quotations are its test data",
}


@dataclass(frozen=True)
class Fragment:
    """A piece of prose in a file: a string, a comment block or a paragraph, and where it starts."""

    path: str
    line: int
    text: str


@dataclass(frozen=True)
class Misquote:
    path: str
    line: int
    quotation: str

    def __str__(self) -> str:
        return f'{self.path}:{self.line}: "{self.quotation}"'


# -- reading files as prose --------------------------------------------------------------------
def _python(path: str, source: str) -> Iterator[Fragment]:
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"{path}: not valid Python: {exc}") from exc
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            inner.update(id(v) for v in node.values)
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "{...}" for v in node.values)
            yield Fragment(path, node.lineno, str(text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner:
            yield Fragment(path, node.lineno, node.value)
    yield from _comment_blocks(path, _python_comments(source))


def _python_comments(source: str) -> Iterator[tuple[int, str]]:
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string.lstrip("#").strip()


def _comment_blocks(path: str, comments: Iterable[tuple[int, str]]) -> Iterator[Fragment]:
    """Consecutive comment lines as one fragment: a sentence may run over several."""
    start, last, lines = 0, -1, list[str]()
    for line, text in comments:
        if lines and line != last + 1:
            yield Fragment(path, start, "\n".join(lines))
            lines = []
        if not lines:
            start = line
        lines.append(text)
        last = line
    if lines:
        yield Fragment(path, start, "\n".join(lines))


def _toml(path: str, source: str) -> Iterator[Fragment]:
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    for value in _strings(data):
        first = value.strip().splitlines()[0][:40] if value.strip() else ""
        at = source.find(first) if first else -1
        yield Fragment(path, source.count("\n", 0, at) + 1 if at >= 0 else 0, value)
    yield from _comment_blocks(path, _toml_comments(source))


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _toml_comments(source: str) -> Iterator[tuple[int, str]]:
    """`#` comments outside strings (basic, literal and multi-line), one per line."""
    in_multi = ""
    for number, line in enumerate(source.splitlines(), 1):
        i, quote = 0, ""
        while i < len(line):
            if in_multi:
                end = line.find(in_multi, i)
                if end < 0:
                    break
                i, in_multi = end + 3, ""
                continue
            ch = line[i]
            if quote:
                if ch == "\\" and quote == '"':
                    i += 2
                    continue
                if ch == quote:
                    quote = ""
            elif line.startswith(('"""', "'''"), i):
                in_multi = line[i : i + 3]
                i += 3
                continue
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                yield number, line[i + 1 :].strip()
                break
            i += 1


# A Markdown line that starts a block of its own: a list item, a table row, a heading, a quote.
_NEW_BLOCK = re.compile(r"^\s*(?:[-*+]\s|\d+\.\s|\||#|>)")


def _markdown(path: str, source: str) -> Iterator[Fragment]:
    """Paragraphs of prose; a fenced ```toml or ```python block read as that language, any other
    fenced block (shell, output) skipped as code."""
    start, lines, fence, lang = 0, list[str](), "", ""
    block: list[str] = []
    for number, line in enumerate(source.splitlines(), 1):
        if line.lstrip().startswith("```"):
            if not fence:
                if lines:
                    yield Fragment(path, start, "\n".join(lines))
                    lines = []
                fence, lang, start, block = "```", line.strip()[3:].strip().lower(), number + 1, []
                continue
            fence = ""
            text = "\n".join(block)
            reader = {"toml": _toml, "python": _python, "py": _python}.get(lang)
            if reader is not None:
                try:
                    for frag in reader(path, text):
                        yield Fragment(path, start + frag.line - 1, frag.text)
                except ValueError:
                    pass  # an excerpt that is not a whole file: read as code, not prose
            continue
        if fence:
            block.append(line)
        elif line.strip() and not (lines and _NEW_BLOCK.match(line)):
            if not lines:
                start = number
            lines.append(line.strip())
        elif lines:
            yield Fragment(path, start, "\n".join(lines))
            lines, start = ([line.strip()], number) if line.strip() else ([], 0)
        elif line.strip():
            lines, start = [line.strip()], number
    if lines:
        yield Fragment(path, start, "\n".join(lines))


def fragments(path: str, source: str) -> list[Fragment]:
    """The prose fragments of one file, read by its kind (Python, TOML, any other text)."""
    if path.endswith(".py"):
        return list(_python(path, source))
    if path.endswith(".toml"):
        return list(_toml(path, source))
    return list(_markdown(path, source))


# -- quotations --------------------------------------------------------------------------------
def credits_guide(text: str) -> bool:
    return CREDITS.search(text) is not None


def quotations(text: str) -> list[str]:
    """Every quotation of two words or more in `text`, in order of appearance."""
    return [q for _, q in _quotations(text)]


def _quotations(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for pattern in _QUOTES:
        for m in pattern.finditer(text):
            q = m.group(1).strip()
            if " " in q and not any(q in other or other in q for _, other in found):
                found.append((m.start(), q))
    return sorted(found)


def _credited_elsewhere(text: str, at: int) -> bool:
    """The nearest source named in the words just before a quotation is not the guide
    (`ip-netns(8): "..."`, `RFC 9110 says '...'`, `page title '...'`)."""
    before = text[max(0, at - 40) : at]
    other = [m.end() for m in OTHER_SOURCE.finditer(before)]
    guide = [m.end() for m in CREDITS.finditer(before)]
    return bool(other) and (not guide or other[-1] > guide[-1])


def _units(text: str) -> list[str]:
    """A fragment's paragraphs (split on blank lines), each one unit of credit, lines joined."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _code_like(quotation: str) -> bool:
    """Markup, config or template text (`a=b`, `{...}`, `<tag>`, backticks), not a sentence."""
    return any(ch in quotation for ch in "={}<>`")


def _is_quoted(quotation: str) -> bool:
    """The guide's words; the first letter's case may follow the quoting sentence."""
    return is_quoted(quotation) or is_quoted(quotation[:1].swapcase() + quotation[1:])


def scan_text(path: str, source: str, exceptions: dict[str, str] = EXCEPTIONS) -> list[Misquote]:
    """The misquotes of one file's text (`path` says how to read it and names it in the result)."""
    out: list[Misquote] = []
    for frag in fragments(path, source):
        for unit in _units(frag.text):
            if not credits_guide(unit):
                continue
            for at, q in _quotations(unit):
                if q in exceptions or _code_like(q) or _credited_elsewhere(unit, at) or _is_quoted(q):
                    continue
                out.append(Misquote(path, frag.line, q))
    return out


def _files(paths: Iterable[Path]) -> Iterator[Path]:
    skip = {".git", ".venv", "node_modules", "__pycache__", "certs"}
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not skip & set(f.parts) and f.suffix in (".py", ".toml", ".md", ".txt"):
                    yield f
        else:
            yield p


def scan(paths: Iterable[Path], exceptions: dict[str, str] = EXCEPTIONS) -> list[Misquote]:
    """Every misquote in the given files and directories (Python, TOML, Markdown and text files)."""
    out: list[Misquote] = []
    for f in _files(paths):
        if f.name == "sendpro-connectivity-guide.txt" or any(f.as_posix().endswith(e) for e in EXEMPT_FILES):
            continue  # the guide itself, or test data
        try:
            source = f.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f}: cannot read: {exc}") from exc
        out.extend(scan_text(str(f), source, exceptions))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m proxy_lab.quotescan PATH...", file=sys.stderr)
        return 2
    try:
        found = scan(Path(a) for a in args)
    except ValueError as exc:
        print(f"quotescan: {exc}", file=sys.stderr)
        return 2
    for m in found:
        print(m)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
