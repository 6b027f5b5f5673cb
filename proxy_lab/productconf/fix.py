"""`propose_fix`: the user's file with the smallest change that makes the meter work.

The product's fixer (`squid_fix`, `tinyproxy_fix`) decides, from the check's findings, what to change
in the product's own syntax; this module gathers the result into a `Fix`: the fixed text, each change
with its reason, the unified diff against the user's file, the new files the fixed configuration
names (written next to it, never over the user's), and the causes it could not fix, each with what
to do instead. The fix is a proposal: the caller checks it in the lab like the user's file and offers
it only when it passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.productconf.diff import diff_changes, display_name, unified_diff
from proxy_lab.productconf.facts import check_meter_ip
from proxy_lab.productconf.model import ProductConfig, apply_changes
from proxy_lab.productconf.problems import FIXABLE, Fix, Problem, Unfixed, not_fixable
from proxy_lab.productconf.source import read_lines
from proxy_lab.productconf.squid_fix import fix_squid
from proxy_lab.productconf.tinyproxy_fix import fix_tinyproxy


def _new_file_diffs(model: ProductConfig, files: dict[Path, str]) -> str:
    """Each new file as a diff against the user's file it extends (a filter file), or against nothing."""
    parts: list[str] = []
    originals = {Path(r.path).name: r.path for r in model.references}
    for path, text in files.items():
        origin = originals.get(path.name.removesuffix(".sendpro"))
        before = "".join(read_lines(Path(origin))[0]) if origin and path.name.endswith(".sendpro") else ""
        parts.append(unified_diff(before, text, name=display_name(model, path), after_label="fix"))
    return "".join(parts)


def propose_fix(
    model: ProductConfig,
    findings: Iterable[Problem | Any],
    *,
    meter_ip: str,
    catalog: Catalog | None = None,
    user: str | None = None,
    port: int | None = None,
    fix_dir: Path | None = None,
    splice_by: Literal["meter", "hosts"] = "meter",
) -> Fix:
    """The smallest change to `model` that lets the meter at `meter_ip` through, for `findings`
    (`Problem`s or `proxy_lab.check.Finding`s of the check of this file).

    `user`: the proxy username the meter sends (None: no credentials); `port`: the port the meter is
    set to (`--port N`); `fix_dir`: where the fixed file and the new files it names go (default: the
    user file's directory); `splice_by`: key an SSL-inspection exemption on the meter's address, or
    on the guide's exact hosts (listed in a new file). Raises ConfigError for a bad `meter_ip`.
    """
    meter_ip = check_meter_ip(meter_ip)
    problems = [Problem.of(f) for f in findings]
    catalog = catalog or load_catalog()
    fix_dir = fix_dir or model.path.parent
    unfixed = [not_fixable(p) for p in problems if p.cause not in FIXABLE]
    ours = [p for p in problems if p.cause in FIXABLE]
    files: dict[Path, str]
    if model.product == "squid":
        e, plan = fix_squid(model, ours, meter_ip=meter_ip, user=user, port=port, catalog=catalog, fix_dir=fix_dir, splice_by=splice_by)
        files, fixed, more = plan.files, plan.fixed, plan.unfixed
    else:
        if any(p.cause == "tls_inspect" for p in ours):
            unfixed.append(Unfixed("tls_inspect", "tinyproxy does not inspect TLS: the re-signing is done elsewhere (a firewall, another proxy)"))
        if any(p.cause == "throttle" for p in ours):
            unfixed.append(Unfixed("throttle", "tinyproxy does not shape bandwidth: the limit is elsewhere"))
        t = fix_tinyproxy(model, ours, meter_ip=meter_ip, user=user, catalog=catalog, fix_dir=fix_dir)
        e, files, fixed, more = t.edits, t.files, t.fixed, t.unfixed
    changes = tuple(sorted(e.changes, key=lambda c: (c.path != model.path, str(c.path), c.line, not c.inserted)))
    return Fix(
        text=apply_changes(model.main, changes),
        changes=changes,
        diff=diff_changes(model, changes, after_label="fix") + _new_file_diffs(model, files),
        files=files,
        fixed=tuple(dict.fromkeys(fixed)),
        unfixed=tuple(unfixed + more),
    )
