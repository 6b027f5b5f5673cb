"""mitmproxy as a target: a `mitmdump` process in regular (explicit proxy) mode.

- TLS inspection (`tls_inspect`): mitmproxy intercepts by default; its confdir is the lab's
  (`PKI.corp_ca_combined()`), so the certificates it mints are signed by the corporate inspection
  CA, and it trusts the cloud upstream through `ssl_verify_upstream_trusted_ca` = the PB root.
  Bypass patterns become `ignore_hosts` regexes ("passed on unmodified", mitmproxy docs "Ignoring
  Domains"), matched against `host:port`.
- Without `tls_inspect`, every connection is ignored (`ignore_hosts` `.*`): a plain CONNECT relay.
- Users: `proxyauth=@file` with `{SHA}` lines (mitmproxy/utils/htpasswd.py); a failed check is
  answered 407 `Proxy-Authenticate: Basic realm="mitmproxy"` in regular mode (addons/proxyauth.py).

Not expressed: allowed CONNECT ports and host lists (mitmproxy has no CONNECT policy; its
`block_list` acts on requests, not on CONNECT), case-insensitive user names (its check compares
names exactly).
"""

from __future__ import annotations

import sys
from pathlib import Path

from proxy_lab.errors import TargetSkipped
from proxy_lab.targets.htpasswd import sha1_line
from proxy_lab.targets.product import LabFacts, Launch, Policy, find_binary, fnmatch_to_regex

NAME = "mitmproxy"
DEFAULT_PORT = 8080
IGNORE_EVERYTHING = ".*"


def binary() -> str | None:
    # the venv's own first: it matches the mitmproxy this package was installed with
    return find_binary("PROXY_LAB_MITMDUMP_BIN", Path(sys.executable).parent / "mitmdump", "mitmdump")


def ignore_pattern(pattern: str) -> str:
    """A bypass host pattern as an `ignore_hosts` regex over `host:port` (`*.pb.com` -> `\\.pb\\.com:\\d+$`)."""
    host = fnmatch_to_regex(pattern)
    host = host[:-1] if host.endswith("$") else host + ".*"
    return host + r":\d+$"


def mitmdump_args(policy: Policy, facts: LabFacts) -> list[str]:
    """mitmdump's arguments for `policy` (without the program); raises TargetSkipped."""
    policy.skip_unexpressed(NAME)
    if policy.connect_ports is not None:
        raise TargetSkipped("mitmproxy cannot express fault 'allow_ports': it has no CONNECT port policy")
    if policy.deny_hosts or policy.allow_hosts is not None:
        raise TargetSkipped("mitmproxy cannot express deny_hosts/allow_hosts on CONNECT (block_list acts on requests only)")
    if policy.users and not policy.username_case_sensitive:
        raise TargetSkipped("mitmproxy cannot express case-insensitive user names: proxyauth compares names exactly")
    args = [
        "--mode", "regular",
        "--listen-host", facts.listen_host,
        "--listen-port", str(facts.listen_port),
        "--set", f"confdir={facts.corp_confdir}",
        "--set", f"ssl_verify_upstream_trusted_ca={facts.pb_root}",
        "--set", "termlog_verbosity=warn",
        "--set", "flow_detail=0",
    ]  # fmt: skip
    if not policy.tls_inspect:
        args += ["--ignore-hosts", IGNORE_EVERYTHING]
    else:
        for pattern in policy.tls_bypass:
            args += ["--ignore-hosts", ignore_pattern(pattern)]
    if policy.users:
        args += ["--set", f"proxyauth=@{facts.workdir / 'htpasswd'}"]
    return args


def launch(policy: Policy, facts: LabFacts, *, scenario_id: str = "") -> Launch:
    args = mitmdump_args(policy, facts)
    exe = binary()
    if exe is None:
        raise TargetSkipped("mitmproxy is not installed (no mitmdump beside this Python or on PATH)")
    files = {}
    if policy.users:
        files["htpasswd"] = "".join(sha1_line(u, p) + "\n" for u, p in policy.users.items())
    return Launch(
        argv=(exe, *args),
        port=facts.listen_port,
        files=files,
        file_modes={"htpasswd": 0o600},
        ready_timeout_s=30.0,  # mitmproxy imports a lot before it listens
    )
