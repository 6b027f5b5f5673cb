"""`unified_diff`: a file before and after, as the report prints it (`--- yours/NAME`, `+++ lab/NAME`).

`diff_changes` renders the Changes of a rewrite (the lab's, or the fix) against the user's files, one
diff per file changed; `describe_changes` lists them with their reasons, one line each.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from proxy_lab.productconf.model import Change, ProductConfig, apply_changes, split_lines


def unified_diff(before: str, after: str, *, name: str, before_label: str = "yours", after_label: str = "lab", context: int = 3) -> str:
    """The unified diff of two texts (empty when equal); every line ends with a line break."""
    out: list[str] = []
    for line in difflib.unified_diff(
        split_lines(before), split_lines(after), fromfile=f"{before_label}/{name}", tofile=f"{after_label}/{name}", n=context
    ):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def display_name(model: ProductConfig, path: Path) -> str:
    """How a report names a file of the configuration: the main file by its name, others relative to it."""
    if path == model.path:
        return path.name
    try:
        return str(path.relative_to(model.path.parent))
    except ValueError:
        return str(path)


def diff_changes(model: ProductConfig, changes: Sequence[Change], *, after_label: str = "lab", context: int = 3) -> str:
    """One unified diff per file of `model` that `changes` touch, main file first."""
    parts: list[str] = []
    for f in model.files:
        if any(c.path == f.path for c in changes):
            parts.append(unified_diff(f.text(), apply_changes(f, changes), name=display_name(model, f.path), after_label=after_label, context=context))
    return "".join(parts)


def describe_changes(changes: Iterable[Change]) -> list[str]:
    """One line per change: where, what became what, and why (continuation lines folded into one)."""
    out: list[str] = []
    for c in changes:
        if not c.new and out and c.path.name in out[-1]:
            continue  # the continuation line of a directive already described
        out.append(c.describe())
    return out


def changed_line_count(diff: str) -> int:
    """Lines a diff adds or removes (its `+`/`-` lines, headers excluded)."""
    return sum(1 for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++ ", "--- ")))
