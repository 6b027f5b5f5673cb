"""mitmdump's arguments: intercept with the corporate CA for tls_inspect, otherwise pass every tunnel through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec
from proxy_lab.targets import mitmproxy_target
from proxy_lab.targets.htpasswd import sha1_line
from proxy_lab.targets.product import LabFacts, policy_from_spec


def args(facts: LabFacts, *faults: FaultSpec, **kw: object) -> list[str]:
    return mitmproxy_target.mitmdump_args(policy_from_spec(ProxySpec(faults=faults, **kw)), facts)  # type: ignore[arg-type]


def test_without_tls_inspect_every_host_is_ignored(facts: LabFacts) -> None:
    a = args(facts)
    assert a[a.index("--ignore-hosts") + 1] == ".*"


def test_tls_inspect_intercepts_with_the_corporate_ca_and_trusts_the_pb_root_upstream(facts: LabFacts) -> None:
    a = args(facts, FaultSpec("tls_inspect", {}))
    assert "--ignore-hosts" not in a  # negative control of the test above
    assert f"confdir={facts.corp_confdir}" in a
    assert f"ssl_verify_upstream_trusted_ca={facts.pb_root}" in a
    assert a[:2] == ["--mode", "regular"]


def test_a_bypass_list_becomes_ignore_hosts_over_host_and_port(facts: LabFacts) -> None:
    a = args(facts, FaultSpec("tls_inspect", {"bypass": ["*.pb.com"]}))
    pattern = a[a.index("--ignore-hosts") + 1]
    assert re.search(pattern, "decometlb20.pb.com:443", re.IGNORECASE)
    assert not re.search(pattern, "pb-ota.redbend.com:443", re.IGNORECASE)
    assert not re.search(pattern, "decometlb20.pb.com.evil.example:443", re.IGNORECASE)


def test_users_go_to_an_htpasswd_file_that_mitmproxy_itself_accepts(facts: LabFacts, tmp_path: Path) -> None:
    a = args(facts, users={"meter": "Postage-2020!"})
    assert f"proxyauth=@{facts.workdir / 'htpasswd'}" in a
    from mitmproxy.utils.htpasswd import HtpasswdFile

    ht = HtpasswdFile(sha1_line("meter", "Postage-2020!") + "\n")
    assert ht.check_password("meter", "Postage-2020!")
    assert not ht.check_password("meter", "postage-2020!")  # negative control
    assert not ht.check_password("Meter", "Postage-2020!")


@pytest.mark.parametrize(
    ("faults", "kw", "match"),
    [
        ((FaultSpec("allow_ports", {"preset": "ssl_ports_only"}),), {}, "allow_ports"),
        ((FaultSpec("deny_hosts", {"patterns": ["*.teamviewer.com"]}),), {}, "deny_hosts"),
        ((), {"users": {"meter": "pw"}, "username_case_sensitive": False}, "case-insensitive"),
        ((FaultSpec("latency", {"delay_ms": 200}),), {}, "fault 'latency'"),
    ],
)
def test_what_mitmproxy_cannot_express_is_skipped(facts: LabFacts, faults: tuple[FaultSpec, ...], kw: dict[str, object], match: str) -> None:
    with pytest.raises(TargetSkipped, match=match):
        args(facts, *faults, **kw)
