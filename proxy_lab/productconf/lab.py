"""`for_lab`: the user's configuration rewritten to run in a lab namespace, with every change said.

The product's own rewrite (`squid_lab`, `tinyproxy_lab`) decides what must change; this module turns
its Changes into the files to write in the lab's temporary directory. An included file that must
change is written there as a copy (`include-N-NAME`) and the `include` line that read it points at
the copy; the user's files are never written. Changes replace lines one for one and new directives go
at the end of the main file, so a line number the product reports in the rewritten file is the same
line of the user's file (up to its last line).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from proxy_lab.productconf.diff import diff_changes
from proxy_lab.productconf.edits import Edits
from proxy_lab.productconf.facts import LabFacts
from proxy_lab.productconf.model import Change, Product, ProductConfig, apply_changes
from proxy_lab.productconf.ports import ListenPort
from proxy_lab.productconf.squid_lab import squid_lab
from proxy_lab.productconf.squid_parse import expand_include
from proxy_lab.productconf.tinyproxy_lab import tinyproxy_lab

CONFIG_NAMES: dict[Product, str] = {"squid": "squid.conf", "tinyproxy": "tinyproxy.conf"}


@dataclass(frozen=True)
class LabConfig:
    """The rewritten configuration and how to run it.

    `path`: the rewritten main file (in the lab's temporary directory); `files`: every file to write
    there, `path` first (copies of changed included files too); `changes`: what changed and why, in
    the user's files' line numbers; `diff`: those changes as unified diffs (`--- yours/`, `+++ lab/`);
    `listen`: where the meter sends CONNECT; `port`: the file's port it stands for; `port_note`: which of the file's ports that is, in a
    sentence; `copies`: which user file each lab file stands for; `run_as`: the account the product switches to (the temporary directory must be its);
    `prepare`: commands to run as that account before the start (`squid` as the first word stands
    for the product's program, `{config}` for `path`); `cwd`: where to start it (the user file's
    directory, so relative paths mean what they mean in production).
    """

    product: Product
    source: Path
    path: Path
    files: Mapping[Path, str]
    changes: tuple[Change, ...]
    diff: str
    listen: tuple[str, int]
    port: ListenPort
    port_note: str
    run_as: str | None
    prepare: tuple[tuple[str, ...], ...]
    cwd: Path
    copies: Mapping[Path, Path]  # the user's file -> its file in the lab (the main file and changed includes)

    @property
    def text(self) -> str:
        return self.files[self.path]


def _copy_includes(e: Edits, workdir: Path) -> dict[Path, Path]:
    """Point include lines at lab copies of the included files that change; returns file -> copy."""
    model = e.model
    copies: dict[Path, Path] = {}
    while True:
        changed = {c.path for c in e.changes}
        todo = [f.path for f in model.includes if f.path in changed and f.path not in copies]
        if not todo:
            return copies
        for path in todo:
            copies[path] = workdir / f"include-{len(copies) + 1}-{path.name}"
        for inc in dict.fromkeys(model.included_by[p] for p in copies):
            args: list[str] = []
            for pattern in inc.args:
                files = expand_include(pattern, inc.path.parent)
                args += [str(copies.get(f, f)) for f in files] if any(f in copies for f in files) else [pattern]
            e.changes = [c for c in e.changes if not (c.path == inc.path and inc.line <= c.line <= inc.last_line and not c.inserted)]
            names = ", ".join(p.name for p in copies if model.included_by[p] == inc)
            e.replace(inc, _include_line(model.file(inc.path).line(inc.line), args), f"reads the lab's copy of {names}, which the lab changes")


def _include_line(old: str, args: list[str]) -> str:
    indent = old[: len(old) - len(old.lstrip())]
    return f"{indent}include {' '.join(args)}"


def for_lab(model: ProductConfig, facts: LabFacts) -> LabConfig:
    """The rewrite of `model` for the lab described by `facts`; raises ProductConfigError for a
    `--port` the file does not listen on."""
    run_as: str | None
    if model.product == "squid":
        s = squid_lab(model, facts)
        e, port, note, run_as, prepare = s.edits, s.port, s.port_note, s.run_as, s.prepare
    else:
        t = tinyproxy_lab(model, facts)
        e, port, note, run_as, prepare = t.edits, t.port, t.port_note, t.run_as, ()
    copies = _copy_includes(e, facts.workdir)
    path = facts.workdir / CONFIG_NAMES[model.product]
    order = {f.path: i for i, f in enumerate(model.files)}
    changes = tuple(sorted(e.changes, key=lambda c: (order[c.path], c.line, not c.inserted)))
    files = {path: apply_changes(model.main, changes)}
    for f in model.includes:
        if f.path in copies:
            files[copies[f.path]] = apply_changes(f, changes)
    return LabConfig(
        product=model.product, source=model.path, path=path, files=files, changes=changes,
        diff=diff_changes(model, changes), listen=(facts.proxy_host, facts.bind_port or port.port), port=port, port_note=note,
        run_as=run_as, prepare=prepare, cwd=model.path.parent, copies={model.path: path, **copies},
    )  # fmt: skip
