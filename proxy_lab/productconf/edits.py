"""`Edits`: the Changes of one rewrite, collected line by line with the reason for each.

The lab rewrite and the fix both say what they change through one `Edits`: replace an argument of a
directive in place (blanks and trailing comments kept), comment a directive out, insert lines before
or after a directive, or add lines at the end of the main file. Each call records one `Change` with
its `why`; `Edits.changes` is the list a report prints and `apply_changes` applies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from proxy_lab.productconf.model import Change, Directive, ProductConfig, commented, replace_tokens


@dataclass
class Edits:
    model: ProductConfig
    changes: list[Change] = field(default_factory=list)

    def _lines(self, d: Directive) -> list[str]:
        f = self.model.file(d.path)
        return [f.line(n) for n in range(d.line, d.last_line + 1)]

    def replace(self, d: Directive, new: str | Sequence[str], why: str) -> None:
        """Replace the directive's line(s) with `new`; its continuation lines are removed."""
        lines = self._lines(d)
        news = (new,) if isinstance(new, str) else tuple(new)
        self.changes.append(Change(d.path, d.line, lines[0], news, why))
        for n, old in enumerate(lines[1:], d.line + 1):
            self.changes.append(Change(d.path, n, old, (), why))

    def args(self, d: Directive, replacements: Mapping[int, str], why: str, append: Sequence[str] = ()) -> None:
        """Replace arguments `index -> value` (1 is the first argument) and append others, in place."""
        lines = self._lines(d)
        words = [d.name, *d.args]
        if len(lines) == 1 and max(replacements, default=0) < len(words):
            quotes = ("\"'" if d.quoted_values else "") if self.model.product == "squid" else '"'  # as the parser read it
            self.replace(d, replace_tokens(lines[0], replacements, append, quotes), why)
            return
        # continued over several lines, or missing the argument: written again on one line
        for i, value in sorted(replacements.items()):
            if i < len(words):
                words[i] = value
            else:
                words.append(value)
        indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        self.replace(d, indent + " ".join([*words, *append]), why)

    def comment_out(self, d: Directive, why: str) -> None:
        lines = self._lines(d)
        for n, old in enumerate(lines, d.line):
            self.changes.append(Change(d.path, n, old, (commented(old),), why))

    def insert_before(self, d: Directive, new: Sequence[str], why: str) -> None:
        self.changes.append(Change(d.path, d.line, None, tuple(new), why))

    def insert_after(self, d: Directive, new: Sequence[str], why: str) -> None:
        self.changes.append(Change(d.path, d.last_line + 1, None, tuple(new), why))

    def append(self, new: Sequence[str], why: str) -> None:
        """Add lines at the end of the main file (where new directives of the lab rewrite go)."""
        main = self.model.main
        self.changes.append(Change(main.path, len(main.lines) + 1, None, tuple(new), why))

    def touched(self, d: Directive) -> bool:
        return any(c.path == d.path and not c.inserted and d.line <= c.line <= d.last_line for c in self.changes)
