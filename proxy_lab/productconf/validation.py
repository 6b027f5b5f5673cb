"""Validation before the start: is the product installed, does the file name files that exist, and
does the product itself accept the file?

- The product must be installed: otherwise the Debian package to install is named (`squid-openssl`
  when the file uses SslBump, `squid` otherwise; `tinyproxy`), and an SslBump file with a squid built
  without OpenSSL says so with the line that needs it.
- Every file the configuration names (acl lists, password files, helpers, CA and key, a tinyproxy
  Filter file, included files) must exist: the missing ones are named with their lines.
- Squid checks the rewritten file with `squid -k parse`; its own message (FATAL or ERROR, with the
  line) becomes one line naming the user's file. tinyproxy has no parse mode: it is started on a
  free loopback port with the rewritten file, and its own start-up error (`Syntax error on line N`)
  is quoted with the user's line.
Every error is a ProductConfigError (exit 2) of one line. Messages that did not stop the product
(an obsolete directive Squid ignores) come back as warnings.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from proxy_lab.productconf.facts import LabFacts
from proxy_lab.productconf.lab import LabConfig, for_lab
from proxy_lab.productconf.model import Product, ProductConfig, ProductConfigError
from proxy_lab.productconf.run import ProductStartError, started, write_files
from proxy_lab.productconf.squid_lab import uses_ssl_bump
from proxy_lab.targets import squid, tinyproxy
from proxy_lab.targets.squid import supports_ssl_bump

BINARIES: dict[Product, str] = {"squid": squid.BINARY, "tinyproxy": tinyproxy.BINARY}
_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?\|\s*(?:kid\d+\|\s*)?")


@dataclass(frozen=True)
class Validation:
    """A file the product accepts: which program checked it, and what it said without refusing."""

    product: Product
    binary: str
    warnings: tuple[str, ...] = ()


def find_product(product: Product) -> str | None:
    """The product's program: `$PROXY_LAB_SQUID_BIN`/`$PROXY_LAB_TINYPROXY_BIN`, the Debian path, or PATH."""
    return squid.binary() if product == "squid" else tinyproxy.binary()


def package_for(model: ProductConfig) -> str:
    if model.product == "tinyproxy":
        return "tinyproxy"
    return "squid-openssl" if uses_ssl_bump(model) else "squid"


def require_product(model: ProductConfig) -> str:
    """The product's program; raises naming the package to install, or the missing OpenSSL build."""
    exe = find_product(model.product)
    bump = uses_ssl_bump(model) if model.product == "squid" else None
    if exe is None:
        because = f" ({model.path.name} uses SslBump at line {bump.line})" if bump else ""
        raise ProductConfigError(
            f"{model.product} is not installed ({BINARIES[model.product]}): apt-get install {package_for(model)}{because}"
        )
    if bump is not None and not supports_ssl_bump(exe):
        raise ProductConfigError(
            f"{bump.where}: `{bump}` uses SslBump, but {exe} is built without OpenSSL: apt-get install squid-openssl",
            path=bump.path, line=bump.line,
        )  # fmt: skip
    return exe


def require_references(model: ProductConfig) -> None:
    """Raise one line naming every file the configuration names that does not exist."""
    missing = model.missing
    if not missing:
        return
    items = "; ".join(f"{r.directive.path.name} line {r.directive.line} (`{r.directive.name}`): {r.what} {r.path}" for r in missing)
    first = missing[0].directive
    raise ProductConfigError(
        f"{model.path}: {'a file it names is' if len(missing) == 1 else f'{len(missing)} files it names are'} missing: {items}",
        path=first.path, line=first.line,
    )  # fmt: skip


def _user_paths(lab: LabConfig, model: ProductConfig, message: str) -> str:
    """A product message about the lab's files, said about the user's (same line numbers)."""
    for user_path, lab_path in lab.copies.items():
        message = message.replace(str(lab_path), str(user_path))
    d = lab.port.directive
    return message.replace(f"{lab.listen[0]}:{lab.listen[1]}", f"{d.args[0]} ({d.path.name} line {d.line})")


def _quote_line(model: ProductConfig, message: str) -> str:
    """Add the user's line when the message gives a line number of the main file the lab did not add."""
    m = re.search(r"line (\d+)|\((\d+)\)", message)
    if m is None:
        return message
    n = int(m.group(1) or m.group(2))
    if n > len(model.main.lines):
        return message + " (a line the lab added)"
    return message


def squid_parse(lab: LabConfig, model: ProductConfig, exe: str) -> tuple[str, ...]:
    """`squid -k parse` of the rewritten file; raises with Squid's own message, returns its warnings."""
    write_files(lab)
    try:
        done = subprocess.run(
            [exe, "-k", "parse", "-f", str(lab.path)], capture_output=True, text=True, timeout=120, check=False, cwd=lab.cwd
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ProductConfigError(f"{model.path}: `{exe} -k parse` could not run: {exc}", path=model.path) from exc
    lines = [_STAMP.sub("", line).strip() for line in (done.stderr + done.stdout).splitlines()]
    said = [line for line in lines if re.search(r"FATAL|ERROR|WARNING|unrecognized", line)]
    fatal = [line for line in said if "FATAL" in line]
    if done.returncode != 0 or fatal:
        head = fatal[0] if fatal else next((line for line in said if "unrecognized" in line or "ERROR" in line), "")
        before = [line for line in said[: said.index(head)] if "ERROR" in line][-2:] if head in said else []
        message = _user_paths(lab, model, head or f"exit status {done.returncode}")
        if before:
            message += " (" + "; ".join(_user_paths(lab, model, b) for b in before) + ")"
        raise ProductConfigError(f"squid rejects {model.path}: {_quote_line(model, message)}", path=model.path)
    return tuple(_user_paths(lab, model, line) for line in said)


def tinyproxy_start(lab: LabConfig, model: ProductConfig, exe: str) -> tuple[str, ...]:
    """Start tinyproxy with the rewritten file; raises with its own start-up error and the user's line."""
    try:
        with started(lab, exe, ready_timeout_s=20.0):
            pass
    except ProductStartError as exc:
        text = str(exc)
        m = re.search(r"[Ss]yntax error on line (\d+)", text)
        if m and 0 < int(m.group(1)) <= len(model.main.lines):
            n = int(m.group(1))
            raise ProductConfigError(
                f"tinyproxy rejects {model.path} line {n}: `{model.main.line(n).strip()}`: Syntax error", path=model.path, line=n
            ) from exc
        raise ProductConfigError(f"tinyproxy rejects {model.path}: {_user_paths(lab, model, text)}", path=model.path) from exc
    output = (lab.path.parent / "output.log").read_text("utf-8", "replace")
    return tuple(line.strip() for line in output.splitlines() if "WARNING" in line or "ERROR" in line)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def validate(model: ProductConfig, facts: LabFacts) -> Validation:
    """Check `model` before a run: installed product, files it names, and the product's own verdict
    on its lab rewrite (on loopback, in a temporary directory removed afterwards)."""
    exe = require_product(model)
    require_references(model)
    workdir = Path(tempfile.mkdtemp(prefix=f"proxy-lab-validate-{model.product}-"))
    try:
        check = dataclasses.replace(facts, proxy_host="127.0.0.1", workdir=workdir, bind_port=free_port())
        lab = for_lab(model, check)
        warnings = squid_parse(lab, model, exe) if model.product == "squid" else tinyproxy_start(lab, model, exe)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Validation(model.product, exe, warnings)
