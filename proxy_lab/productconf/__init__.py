"""Product config: a user's own squid.conf or tinyproxy.conf, run in the lab and fixed.

The engine under `proxy-lab check --product squid|tinyproxy --config FILE`: it reads the user's
file, rewrites only what the lab must change, lets the real product validate it, and proposes the
smallest change that makes the meter work. Starting the product in a namespace and running the
meter's traffic through it is the caller's job (the runner); everything here is callable without it.

Public interface (every error is a `ProductConfigError`, a `proxy_lab.errors.ConfigError`: one line
naming the file, line or option; exit 2):

`parse_config(path, product, *, text=None) -> ProductConfig`
    The lossless model of the file: `text(model)` gives it back byte for byte; `model.directives`
    in the order the product applies them (Squid `include`s followed), `model.references` the files
    it names (found or not). Refuses a file that is unreadable, not text, the other product's, or
    has no TCP port the meter can use.

`LabFacts(proxy_host, workdir, dns_server, pb_root, port=None, meter_ip=None, hosts_file="/etc/hosts", bind_port=None)`
    What the lab gives: the namespace's proxy address, a private temporary directory, the lab's DNS
    server, the lab PB root certificate, the port the meter is set to (`--port N`; None: the file's
    first) and the meter's address.

`for_lab(model, facts) -> LabConfig`
    The rewrite: `.text` (the main file) and `.files` (every file to write in `facts.workdir`),
    `.changes` (each `Change`: file, line, old line, new lines, why), `.diff` (`--- yours/`
    `+++ lab/`), `.listen` (where the meter connects), `.port_note` (which port, in a sentence),
    `.run_as` (the account the product switches to: the workdir must be its), `.prepare` (commands
    to run before the start), `.cwd`.

`validate(model, facts) -> Validation`
    Before a run: the product is installed (else the Debian package to install: `squid-openssl` for
    SslBump), an SslBump file has an OpenSSL squid, every file the configuration names exists, and
    the product accepts the rewrite (`squid -k parse`; tinyproxy started on a free loopback port).
    The product's own message and the user's line, in one line. `.warnings`: what it said without
    refusing.

`check_meter_ip(value, option="--meter-ip") -> str`
    An IP address outside the meter's internal subnets (the guide's sentence quoted when it is not).

`propose_fix(model, findings, *, meter_ip, catalog=None, user=None, port=None, fix_dir=None, splice_by="meter") -> Fix`
    From the check's findings (`proxy_lab.check.Finding`s or `Problem(cause, endpoints)`), the
    smallest change in the product's own syntax: `.text`, `.changes` (each block opens with one
    comment line quoting the guide), `.diff` (`--- yours/` `+++ fix/`), `.files` (new files to write
    in `fix_dir` next to the fixed file: a tinyproxy filter file, a host list), `.fixed`, and
    `.unfixed` (causes the file cannot fix, with what to do). Exact hosts or the meter's address,
    never wildcards. Check the fixed file like the user's before offering it.

`unified_diff(before, after, *, name, before_label="yours", after_label="lab")`, `diff_changes(model,
changes)`, `describe_changes(changes)`: the report's diff and one line per change.

`started(lab, exe)` (context manager) and `argv(lab, exe)`: start the product with a LabConfig, wait
until it listens, stop its whole process group on leaving (`run.ProductStartError` if it will not).
"""

from __future__ import annotations

from proxy_lab.productconf.diff import describe_changes, diff_changes, unified_diff
from proxy_lab.productconf.facts import LabFacts, check_meter_ip
from proxy_lab.productconf.fix import propose_fix
from proxy_lab.productconf.lab import LabConfig, for_lab
from proxy_lab.productconf.model import (
    Change,
    ConfigFile,
    Directive,
    ProductConfig,
    ProductConfigError,
    Reference,
    text,
)
from proxy_lab.productconf.parse import parse_config
from proxy_lab.productconf.problems import Fix, Problem, Unfixed
from proxy_lab.productconf.run import ProductStartError, argv, started
from proxy_lab.productconf.validation import Validation, find_product, validate

__all__ = [
    "Change",
    "ConfigFile",
    "Directive",
    "Fix",
    "LabConfig",
    "LabFacts",
    "Problem",
    "ProductConfig",
    "ProductConfigError",
    "ProductStartError",
    "Reference",
    "Unfixed",
    "Validation",
    "argv",
    "check_meter_ip",
    "describe_changes",
    "diff_changes",
    "find_product",
    "for_lab",
    "parse_config",
    "propose_fix",
    "started",
    "text",
    "unified_diff",
    "validate",
]
