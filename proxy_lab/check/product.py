"""`proxy-lab check --product squid|tinyproxy --config FILE`: the user's own proxy configuration, checked in the lab.

The installed product runs the user's file (rewritten only where the lab must: `productconf.for_lab`)
in a network namespace of the run's own, whose names and routes lead to the simulated cloud; the
field check's traffic profile of the model goes through it from the meter's address (`--meter-ip`,
put on the namespace's loopback so `acl ... src` and tinyproxy `Allow` rules apply as in
production). The report, findings, verdict and exit codes are `check`'s (0 the meter will work, 1 it
will not or only with reduced support, 2 a usage or configuration error), plus the lab's diff.
`--fix-out PATH` writes the smallest change that makes the meter work (`productconf.propose_fix`),
checks the fixed file the same way, and offers it only when it passes (otherwise the file written
is removed again and the report says why). The user's file is never written.

Nothing is left behind: the namespace, the product and the child that runs the probes are stopped
in `finally` on success, error, Ctrl-C or SIGTERM (`proxy_lab.netns.Namespace`).

Only this module and `product_child` (the half that runs inside the namespace) know about products;
`check.command` calls `add_product_options` and `product_requested`/`cmd_product`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_lab.catalog import load_catalog
from proxy_lab.check.verdict import CheckReport, Finding, summarize
from proxy_lab.errors import ConfigError, SetupError

# Assumption (the guide gives no address): a meter is a LAN client; without --meter-ip it is at this
# private address, which Debian's stock squid.conf counts as `localnet` (10.0.0.0/8) but does not
# allow (its `http_access allow localnet` is commented out), and tinyproxy's stock `Allow` does not list.
DEFAULT_METER_IP = "10.20.30.40"
# Where the product listens in the namespace: RFC 2544's benchmarking range, never a real LAN's, so
# it cannot collide with an address a user's rule names (the second one when the meter is the first).
PROXY_ADDRESSES = ("198.18.0.1", "198.18.0.2")
# The same for a meter on IPv6: the benchmarking prefix (RFC 5180), as 198.18/15 is for IPv4.
PROXY_ADDRESSES_V6 = ("2001:2::1", "2001:2::2")
PRODUCT_NAMES = ("squid", "tinyproxy")
_CHILD_BUDGET_S = 240.0
_STOP_WAIT_S = 5.0


def add_product_options(p: argparse.ArgumentParser) -> None:
    """`check`'s options for the user's own proxy configuration."""
    g = p.add_argument_group(
        "your own proxy configuration (needs root: the product runs in a network namespace)",
        "proxy-lab check --product squid --config /etc/squid/squid.conf --meter-ip 10.20.30.40 --fix-out fixed.conf",
    )
    g.add_argument("--product", choices=PRODUCT_NAMES, help="the installed product that runs --config")
    g.add_argument("--config", metavar="FILE", help="your squid.conf or tinyproxy.conf (never written)")
    g.add_argument("--user", metavar="NAME:PASSWORD", help="the proxy credentials set on the meter (default: none)")
    g.add_argument("--meter-ip", metavar="IP", default=None,
                   help=f"the meter's address on your LAN, as your rules see it (default: {DEFAULT_METER_IP}, an assumption)")  # fmt: skip
    g.add_argument("--port", type=int, metavar="N", help="the port the meter is set to (default: the file's first)")
    g.add_argument("--fix-out", metavar="PATH", help="write the smallest change that makes the meter work here, once it passes")


def product_requested(args: argparse.Namespace) -> bool:
    """Whether `check` was asked about a product configuration."""
    return any(getattr(args, name, None) for name in ("product", "config", "user", "meter_ip", "port", "fix_out"))


@dataclass(frozen=True)
class ProductOptions:
    """`check --product`'s options, checked: every error names the option (exit 2)."""

    product: str
    config: Path
    meter_ip: str
    proxy_host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    fix_out: Path | None = None
    model: str = "sendpro-plus"
    timeout_s: float = 10.0
    concurrency: int = 16
    certs_dir: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ProductOptions:
        from proxy_lab.productconf import check_meter_ip

        if not args.product:
            raise ConfigError("check: --config, --user, --meter-ip, --port and --fix-out go with --product squid|tinyproxy")
        if not args.config:
            raise ConfigError(f"check --product {args.product}: give --config FILE (your {args.product} configuration)")
        for other in ("proxy", "lab", "fault", "bandwidth_url", "dns_server", "resolve", "trust"):
            if getattr(args, other, None):
                raise ConfigError(f"check --product: --{other.replace('_', '-')} does not apply (the lab is the network)")
        meter_ip = check_meter_ip(args.meter_ip or DEFAULT_METER_IP)
        proxy_addresses = PROXY_ADDRESSES if ipaddress.ip_address(meter_ip).version == 4 else PROXY_ADDRESSES_V6
        user = password = None
        if args.user is not None:
            user, sep, password = args.user.partition(":")
            if not sep or not user:
                raise ConfigError(f"--user {args.user!r}: expected NAME:PASSWORD")
        if args.port is not None and not 0 < args.port < 65536:
            raise ConfigError(f"--port {args.port}: expected 1-65535")
        config = Path(args.config)
        fix_out = Path(args.fix_out) if args.fix_out else None
        if fix_out is not None:
            if fix_out.exists() and fix_out.resolve() == config.resolve():
                raise ConfigError(f"--fix-out {fix_out}: is --config itself; the fix goes to another file (yours is never edited)")
            if not fix_out.parent.is_dir():
                raise ConfigError(f"--fix-out {fix_out}: directory {fix_out.parent} does not exist")
        if args.timeout <= 0 or args.concurrency < 1:
            raise ConfigError("check: --timeout must be > 0 and --concurrency >= 1")
        return cls(
            product=args.product, config=config, meter_ip=meter_ip,
            proxy_host=next(a for a in proxy_addresses if a != meter_ip), user=user, password=password,
            port=args.port, fix_out=fix_out, model=args.model, timeout_s=args.timeout, concurrency=args.concurrency,
            certs_dir=Path(args.certs) if getattr(args, "certs", None) else None,
        )  # fmt: skip


@dataclass
class FixResult:
    """The fix of a failing file: offered (`path`) only when its own check (`report`) passes."""

    diff: str = ""
    changes: list[str] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)
    report: CheckReport | None = None
    path: Path | None = None
    reason: str = ""  # why no fix is offered

    def to_dict(self) -> dict[str, Any]:
        return {
            "offered": self.path is not None, "path": str(self.path) if self.path else None, "reason": self.reason,
            "diff": self.diff, "changes": self.changes, "unfixed": self.unfixed,
            "verdict": self.report.verdict if self.report else None,
        }  # fmt: skip


@dataclass
class ProductCheck:
    """A product configuration's check: the field check's report, and what the lab changed and fixed."""

    product: str
    config: Path
    meter_ip: str
    port_note: str
    lab_diff: str
    lab_changes: list[str]
    report: CheckReport
    warnings: tuple[str, ...] = ()
    fix: FixResult | None = None
    refused_by: dict[str, str] = field(default_factory=dict)  # finding's cause id -> the rule of the file that refused it

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.report.to_dict(),
            "product": {
                "name": self.product, "config": str(self.config), "meter_ip": self.meter_ip, "port": self.port_note,
                "lab_diff": self.lab_diff, "lab_changes": self.lab_changes, "warnings": list(self.warnings),
                "refused_by": self.refused_by,
                "fix": self.fix.to_dict() if self.fix else None,
            },
        }  # fmt: skip


# -- running the check ------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) in the main thread, so `finally` tears everything down."""

    def raise_exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, raise_exit)
    except ValueError:  # not the main thread: the caller handles its own signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop_child(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(_STOP_WAIT_S)


def _payload(opts: ProductOptions, config: Path, workdir: Path, certs: Path) -> dict[str, Any]:
    from proxy_lab.netns import CLOUD_ADDRESS

    return {
        "parent_pid": os.getpid(), "certs_dir": str(certs), "cloud_address": CLOUD_ADDRESS, "proxy_host": opts.proxy_host,
        "product": opts.product, "config": str(config.absolute()), "port": opts.port, "meter_ip": opts.meter_ip,
        "user": opts.user, "password": opts.password, "model": opts.model, "timeout_s": opts.timeout_s,
        "concurrency": opts.concurrency, "workdir": str(workdir),
    }  # fmt: skip


def probe_in(ns: Any, opts: ProductOptions, config: Path, tmp: Path, certs: Path, workdir: Path) -> CheckReport:
    """Run the product with `config` in namespace `ns` and the meter's traffic through it: the report.
    `workdir` is the product's state directory (the one the lab's diff names).

    ConfigError when the product refuses the file at start (exit 2); SetupError when the lab cannot run."""
    from proxy_lab.outcomes import Result
    from proxy_lab.typed import decode

    started_at = time.monotonic()
    run = Path(tempfile.mkdtemp(prefix="run-", dir=tmp))
    run.chmod(0o755)
    payload_path = run / "payload.json"
    fd = os.open(payload_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({**_payload(opts, config, workdir, certs), "journal": str(run / "journal.sqlite3")}, f)
    stderr_path = run / "child.stderr"
    with stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            ns.exec_argv([sys.executable, "-m", "proxy_lab.check.product_child", str(payload_path)]),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=_CHILD_BUDGET_S)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{opts.product}: the check in the namespace took longer than {_CHILD_BUDGET_S:g} s") from exc
    finally:
        _stop_child(proc)
    msg: dict[str, Any] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            msg = json.loads(line)
    if msg.get("kind") == "fatal":
        text = str(msg.get("message", "unknown error"))
        raise ConfigError(text) if msg.get("config_error") else SetupError(text)
    if msg.get("kind") != "results":
        tail = " | ".join(stderr_path.read_text("utf-8", "replace").strip().splitlines()[-8:])
        raise SetupError(f"{opts.product}: the check in the namespace ended (exit {proc.returncode}) without results: {tail}")
    catalog = load_catalog()
    results = [decode(Result, r) for r in msg["results"]]
    report = summarize(str(msg["proxy"]), opts.model, catalog, results)
    report.bandwidth_kbps, report.bandwidth_note = msg.get("kbps"), str(msg.get("note", ""))
    if report.bandwidth_kbps is not None and report.bandwidth_kbps < catalog.min_kbps and not any(f.cause.id == "throttle" for f in report.findings):
        from proxy_lab.advice import CAUSES

        report.findings.append(Finding(CAUSES["throttle"], ["bandwidth"], [], f"{report.bandwidth_kbps:.0f} kbit/s measured"))
    report.elapsed_s = time.monotonic() - started_at
    return report


def refused_by(model: Any, report: CheckReport, opts: ProductOptions, local_port: int) -> dict[str, str]:
    """For each finding, the line of the user's file that refuses the meter's CONNECT (the product's
    own decision order, read by `productconf`'s access models), said as `line` (file line N)."""
    from proxy_lab.productconf import Problem
    from proxy_lab.productconf.squid_access import Request, http_access
    from proxy_lab.productconf.tinyproxy_access import tinyproxy_access

    out: dict[str, str] = {}
    for f in report.findings:
        targets = Problem.of(f).targets()
        if not targets:
            continue
        host, port = targets[0]
        if model.product == "squid":
            decision = http_access(model, Request(opts.meter_ip, host, port, local_port, user=opts.user))
            rule, refused = decision.rule, not decision.allowed
            what = "" if rule is not None else "no http_access line matched: Squid's default (the opposite of the last line)"
        else:
            tiny = tinyproxy_access(model, opts.meter_ip, host, port, opts.user)
            rule, refused = tiny.directive, not tiny.allowed
            allows = model.named("allow")
            listed = ", ".join(f"`{d}` (line {d.line})" for d in allows)
            what = "" if rule is not None else (
                f"Allow lines {listed} in {model.path.name}: none lists {opts.meter_ip}, and tinyproxy denies every client "
                "no Allow line lists ('Deny all connections by default')"
            )  # fmt: skip
        if refused:
            out[f.cause.id] = f"`{rule}` ({rule.path.name} line {rule.line})" if rule is not None else what
    return out


def _write_fix(opts: ProductOptions, fix: Any) -> list[Path]:
    """Write the fixed file and the new files it names; refuse to overwrite the user's own files."""
    assert opts.fix_out is not None
    targets = {opts.fix_out: fix.text, **fix.files}
    for path in targets:
        if path.exists() and path.resolve() == opts.config.resolve():
            raise ConfigError(f"--fix-out {opts.fix_out}: the fix would overwrite your {path}; choose another directory")
    written: list[Path] = []
    for path, content in targets.items():
        Path(path).write_text(content, encoding="utf-8")
        written.append(Path(path))
    return written


def fix_and_recheck(opts: ProductOptions, model: Any, report: CheckReport, ns: Any, tmp: Path, certs: Path) -> FixResult:
    """Propose the fix for `report`'s findings, write it to --fix-out and check it the same way."""
    from proxy_lab.productconf import describe_changes, parse_config, propose_fix, validate

    assert opts.fix_out is not None
    fix = propose_fix(model, report.findings, meter_ip=opts.meter_ip, user=opts.user, port=opts.port, fix_dir=opts.fix_out.parent.absolute())
    result = FixResult(diff=fix.diff, changes=describe_changes(fix.changes), unfixed=[f"{u.cause}: {u.reason}" for u in fix.unfixed])
    if not fix.changed:
        result.reason = "nothing in this file to change for what failed" + (f" ({'; '.join(result.unfixed)})" if result.unfixed else "")
        return result
    written = _write_fix(opts, fix)
    try:
        fixed = parse_config(opts.fix_out, model.product)  # type: ignore[arg-type]
        validate(fixed, _facts(opts, tmp, certs))
        result.report = probe_in(ns, opts, opts.fix_out, tmp, certs, tmp / "lab-fix")
    except ConfigError as exc:
        result.reason = f"the fixed file does not run: {exc}"
    if result.report is not None and result.report.exit_code == 0:
        result.path = opts.fix_out
        return result
    if result.report is not None:
        result.reason = f"the fixed file still fails ({result.report.verdict}): not offered"
    for path in written:
        path.unlink(missing_ok=True)
    return result


def _facts(opts: ProductOptions, tmp: Path, certs: Path) -> Any:
    from proxy_lab.netns import CLOUD_ADDRESS
    from proxy_lab.pki import PKI
    from proxy_lab.productconf import LabFacts

    return LabFacts(opts.proxy_host, tmp / "lab", CLOUD_ADDRESS, PKI.load(certs).pb_root.cert, port=opts.port, meter_ip=opts.meter_ip)


def run_product_check(opts: ProductOptions) -> ProductCheck:
    """The whole check of one product configuration (and its fix with `opts.fix_out`); raises
    ConfigError (exit 2) for a file or option the check cannot use, SetupError when the lab cannot run."""
    from proxy_lab.netns import Namespace, require_root
    from proxy_lab.pki import DEFAULT_CERTS_DIR
    from proxy_lab.productconf import describe_changes, for_lab, parse_config, validate
    from proxy_lab.productconf.validation import require_product, require_references

    model = parse_config(opts.config, opts.product)  # type: ignore[arg-type]
    certs = Path(os.path.abspath(opts.certs_dir or DEFAULT_CERTS_DIR))
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="proxy-lab-product-", dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)  # the product's account reaches its state directory below
        facts = _facts(opts, tmp, certs)
        lab = for_lab(model, facts)
        require_product(model)  # not installed, or SslBump without OpenSSL: the package to install
        require_references(model)  # a password file, filter file or CA the file names is missing
        require_root()
        checked = validate(model, facts)
        with Namespace(load_catalog()) as ns:
            ns.add_client(opts.meter_ip, opts.proxy_host)
            report = probe_in(ns, opts, opts.config, tmp, certs, facts.workdir)
            result = ProductCheck(
                opts.product, opts.config, opts.meter_ip, lab.port_note, lab.diff, describe_changes(lab.changes), report,
                checked.warnings, refused_by=refused_by(model, report, opts, lab.port.port),
            )  # fmt: skip
            if opts.fix_out is not None:
                if report.exit_code == 0:
                    result.fix = FixResult(reason="the file passes: nothing to fix, no file written")
                else:
                    result.fix = fix_and_recheck(opts, model, report, ns, tmp, certs)
    return result


def cmd_product(args: argparse.Namespace) -> int:
    """`proxy-lab check --product ...`: print the report (and the fix), return the check's exit code."""
    from proxy_lab.check.product_render import render_product
    from proxy_lab.cliargs import EXIT_USAGE, write_output

    opts = ProductOptions.from_args(args)
    try:
        result = run_product_check(opts)
    except SetupError as exc:
        print(f"proxy-lab: setup failure: {exc}", file=sys.stderr)
        return EXIT_USAGE
    write_output(render_product(result, args.format), args.output, f"(verdict: {result.report.verdict})")
    return result.exit_code
