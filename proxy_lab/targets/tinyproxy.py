"""tinyproxy as a target: a tinyproxy.conf generated from a Policy, on Debian's shipped defaults.

The base is Debian's /etc/tinyproxy/tinyproxy.conf (tinyproxy 1.11.1): `Timeout 600`,
`MaxClients 100`, `Allow 127.0.0.1`, `ViaProxyName "tinyproxy"`, and no `ConnectPort` line, which
per tinyproxy.conf(5) allows CONNECT to every port ("If no ConnectPort line is found, all ports are
allowed"; Debian ships `#ConnectPort 443` and `#ConnectPort 563` commented out). The lab's allowed
CONNECT ports become `ConnectPort` lines, users `BasicAuth` lines, and deny or allow lists a
`Filter` file of anchored extended regular expressions (with `FilterDefaultDeny Yes` for an allow
list). Without `LogFile`, `-d` keeps it in the foreground logging to stderr.

Not expressed: TLS inspection; user names or passwords outside `[-A-Za-z0-9._]` (tinyproxy 1.11's
config grammar, conf.c: `BasicAuth` takes two `[-a-z0-9._]+` words, case-insensitively, so a
password such as `Postage-2020!` cannot be configured at all); user names compared
case-insensitively (tinyproxy compares the base64 of `user:password` as a whole); having both a deny
and an allow list.
"""

from __future__ import annotations

import re

from proxy_lab.errors import TargetSkipped
from proxy_lab.targets.product import LabFacts, Launch, Policy, find_binary, fnmatch_to_regex

NAME = "tinyproxy"
BINARY = "/usr/bin/tinyproxy"
DEFAULT_PORT = 8888
DEFAULT_ERROR_FILE = "/usr/share/tinyproxy/default.html"

# tinyproxy 1.11 conf.c: `#define ALNUM "([-a-z0-9._]+)"`, compiled with REG_ICASE.
_WORD = re.compile(r"^[-A-Za-z0-9._]+$")


def binary() -> str | None:
    return find_binary("PROXY_LAB_TINYPROXY_BIN", "tinyproxy", BINARY)


def tinyproxy_conf(policy: Policy, facts: LabFacts, *, scenario_id: str = "") -> str:
    """The tinyproxy.conf for `policy`; raises TargetSkipped for what tinyproxy cannot do."""
    policy.skip_unexpressed(NAME)
    if policy.tls_inspect:
        raise TargetSkipped("tinyproxy cannot express fault 'tls_inspect': it has no TLS interception")
    for user, password in policy.users.items():
        for what, value in (("user name", user), ("password", password)):
            if not _WORD.match(value):
                raise TargetSkipped(
                    f"tinyproxy cannot express the {what} of user {user!r}: its BasicAuth accepts only "
                    "letters, digits, '-', '.' and '_' (tinyproxy 1.11 conf.c)"
                )
    if policy.users and not policy.username_case_sensitive:
        raise TargetSkipped("tinyproxy cannot express case-insensitive user names: BasicAuth compares user:password exactly")
    if policy.connect_ports is not None and policy.port_refusal != "403":
        raise TargetSkipped(f"tinyproxy cannot express allow_ports action {policy.port_refusal!r}: it answers 403 Access violation")
    if policy.deny_hosts and policy.allow_hosts is not None:
        raise TargetSkipped("tinyproxy cannot express both a deny list and an allow list: it has one Filter")
    w = facts.workdir
    lines = [
        f"# proxy-lab: tinyproxy.conf for scenario {scenario_id or '?'} (generated on Debian's defaults)",
        f"Port {facts.listen_port}",
        f"Listen {facts.listen_host}",
        "Timeout 600",
        f'DefaultErrorFile "{DEFAULT_ERROR_FILE}"',
        "LogLevel Info",
        f'PidFile "{w}/tinyproxy.pid"',
        "MaxClients 100",
        "Allow 127.0.0.1",
        "Allow ::1",
        'ViaProxyName "tinyproxy"',
    ]
    if policy.connect_ports is not None:
        lines += [f"ConnectPort {p}" for p in policy.connect_ports]
    for user, password in policy.users.items():
        lines.append(f"BasicAuth {user} {password}")
    # No `BasicAuthRealm`: tinyproxy 1.11.1 (Debian 12) has no such directive and refuses to start
    # ("Syntax error"); its challenge is always `Basic realm="Tinyproxy"`, so a scenario's realm is
    # not expressed (the meter answers any Basic realm alike).
    if policy.deny_hosts or policy.allow_hosts is not None:
        lines += [f'Filter "{w}/filter"', "FilterType ere", "FilterCaseSensitive No"]
        if policy.allow_hosts is not None:
            lines.append("FilterDefaultDeny Yes")
    return "\n".join(lines) + "\n"


def filter_file(policy: Policy) -> str:
    patterns = policy.allow_hosts if policy.allow_hosts is not None else policy.deny_hosts
    return "".join(fnmatch_to_regex(p) + "\n" for p in patterns)


def launch(policy: Policy, facts: LabFacts, *, scenario_id: str = "") -> Launch:
    conf = tinyproxy_conf(policy, facts, scenario_id=scenario_id)
    exe = binary()
    if exe is None:
        raise TargetSkipped(f"tinyproxy is not installed ({BINARY}); apt-get install tinyproxy")
    files = {"tinyproxy.conf": conf}
    if policy.deny_hosts or policy.allow_hosts is not None:
        files["filter"] = filter_file(policy)
    return Launch(
        argv=(exe, "-d", "-c", str(facts.workdir / "tinyproxy.conf")),
        port=facts.listen_port,
        files=files,
        file_modes={"tinyproxy.conf": 0o600},
        ready_timeout_s=10.0,
    )
