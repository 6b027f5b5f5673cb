"""proxy.py as a target: a `proxy` process (abhinavsingh/proxy.py) with its default plugins.

proxy.py's HttpProxyPlugin tunnels CONNECT to any port; `--basic-auth user:password` makes it
answer 407 to any request whose `Proxy-Authorization` is not exactly that user and password (it
compares the base64 of `user:password` as a whole). One acceptor and one worker keep it light.

Not expressed: more than one user (`--basic-auth` takes one), case-insensitive user names,
allowed CONNECT ports, host lists (its FilterByUpstreamHostPlugin is an example plugin with a fixed
list, not a setting), TLS inspection (its `--ca-*-file` interception is not wired to the lab CA).
"""

from __future__ import annotations

import sys
from pathlib import Path

from proxy_lab.errors import TargetSkipped
from proxy_lab.targets.product import LabFacts, Launch, Policy, find_binary

NAME = "proxypy"
DEFAULT_PORT = 8899


def binary() -> str | None:
    # the venv's own entry point first: `proxy` on PATH may be something else entirely
    return find_binary("PROXY_LAB_PROXYPY_BIN", Path(sys.executable).parent / "proxy", "proxy")


def proxy_args(policy: Policy, facts: LabFacts) -> list[str]:
    """`proxy`'s arguments for `policy` (without the program); raises TargetSkipped."""
    policy.skip_unexpressed("proxy.py")
    if policy.tls_inspect:
        raise TargetSkipped("proxy.py cannot express fault 'tls_inspect' here: its interception is not wired to the lab CA")
    if policy.connect_ports is not None:
        raise TargetSkipped("proxy.py cannot express fault 'allow_ports': it tunnels CONNECT to every port")
    if policy.deny_hosts or policy.allow_hosts is not None:
        raise TargetSkipped("proxy.py cannot express deny_hosts/allow_hosts as a setting")
    if len(policy.users) > 1:
        raise TargetSkipped(f"proxy.py cannot express {len(policy.users)} users: --basic-auth takes one user:password")
    if policy.users and not policy.username_case_sensitive:
        raise TargetSkipped("proxy.py cannot express case-insensitive user names: --basic-auth compares user:password exactly")
    args = [
        "--hostname", facts.listen_host,
        "--port", str(facts.listen_port),
        "--num-acceptors", "1",
        "--num-workers", "1",
        "--log-level", "WARNING",
        "--timeout", "30",
    ]  # fmt: skip
    for user, password in policy.users.items():
        args += ["--basic-auth", f"{user}:{password}"]
    return args


def launch(policy: Policy, facts: LabFacts, *, scenario_id: str = "") -> Launch:
    args = proxy_args(policy, facts)
    exe = binary()
    if exe is None:
        raise TargetSkipped("proxy.py is not installed (no `proxy` beside this Python or on PATH; pip install proxy.py)")
    return Launch(argv=(exe, *args), port=facts.listen_port, ready_timeout_s=20.0)
