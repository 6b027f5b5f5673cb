"""The guide's own text, and whether a sentence quotes it.

Owns the vendored copy of the SendPro C, SendPro+ Connectivity Guide SV63189-gb Rev. C
(`proxy_lab/data/sendpro-connectivity-guide.txt`, byte-identical to the seed) and `is_quoted`, the
one test of whether the guide says exactly this. The text came out of a PDF, so both sides are compared
after `normalise`: whitespace collapsed, typographic quotes and dashes made plain, the PDF's list
bullets (`-`, `•`, `o`, `1.`, `a.`) and emphasis asterisks dropped. Nothing else is forgiven: a
changed word, a changed case or a paraphrase is not a quotation.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["GUIDE_FILE", "guide_text", "is_quoted", "normalise"]

GUIDE_FILE = "data/sendpro-connectivity-guide.txt"

_PLAIN = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
        "\u2013": "-", "\u2014": "-", "\u00a0": " ", "\u2026": "...", "*": "",
    }
)  # fmt: skip
# A list marker at the start of a line: "- ", "• ", "o " (the PDF's second-level bullet),
# "1. ", "a. " (the proxy set-up steps), possibly several ("- 1. Tap Settings").
_BULLET = re.compile(r"^(?:\s*(?:[-•o]|\d{1,2}\.|[a-z]\.)\s+)+")
_SPACE = re.compile(r"\s+")
# An elision inside a quotation: "verify there are no content filters ... blocking".
_ELISION = re.compile(r"\s+\.\.\.\s+|\s*\[\.\.\.\]\s*")


@cache
def guide_text() -> str:
    """The guide as the vendored file holds it (UTF-8)."""
    return resources.files("proxy_lab").joinpath(GUIDE_FILE).read_text("utf-8")


def normalise(text: str) -> str:
    """`text` as the comparison sees it: plain quotes and dashes, no bullets or asterisks, single spaces."""
    lines = (_BULLET.sub("", line) for line in text.translate(_PLAIN).splitlines())
    return _SPACE.sub(" ", " ".join(lines)).strip()


@cache
def _normalised_guide() -> str:
    return normalise(guide_text())


def is_quoted(text: str, guide: str | None = None) -> bool:
    """True when `text` is the guide's own words (after `normalise`), allowing for an elision
    written " ... " between exact parts, in order, and one closing `.`, `,`, `;` or `:` that the
    quoting sentence added. Empty text is not a quotation."""
    haystack = _normalised_guide() if guide is None else normalise(guide)
    needle = normalise(text)
    if not needle:
        return False
    if needle in haystack:
        return True
    trimmed = needle.rstrip(".,;:").rstrip()
    if trimmed and trimmed != needle and trimmed in haystack:
        return True
    parts = [p.strip() for p in _ELISION.split(f" {trimmed or needle} ")]
    parts = [p for p in parts if p]
    if len(parts) < 2:
        return False
    at = 0
    for part in parts:
        found = haystack.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True
