"""A scenario's proxy settings reduce to a product-neutral Policy; what has no meaning there is kept apart."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec
from proxy_lab.targets.product import fnmatch_to_regex, policy_from_spec


def spec(*faults: FaultSpec, **kw: object) -> ProxySpec:
    return ProxySpec(faults=faults, **kw)  # type: ignore[arg-type]


def test_no_faults_means_every_port_and_every_host() -> None:
    p = policy_from_spec(spec(users={"meter": "pw"}))
    assert p.connect_ports is None and p.deny_hosts == () and p.allow_hosts is None and not p.tls_inspect
    assert p.users == {"meter": "pw"} and p.unexpressed == ()


def test_allow_ports_preset_ssl_ports_only_is_port_443() -> None:
    p = policy_from_spec(spec(FaultSpec("allow_ports", {"preset": "ssl_ports_only"})))
    assert p.connect_ports == (443,)


def test_allow_ports_adds_ports_allowed_to_the_preset_as_the_lab_fault_does() -> None:
    p = policy_from_spec(spec(FaultSpec("allow_ports", {"preset": "ssl_ports_only", "ports_allowed": [5938, 80]})))
    assert p.connect_ports == (80, 443, 5938)


def test_allow_ports_action_is_carried_as_the_port_refusal() -> None:
    p = policy_from_spec(spec(FaultSpec("allow_ports", {"ports_allowed": [443], "action": "reset"})))
    assert p.port_refusal == "reset"


def test_a_fault_scoped_to_some_hosts_is_not_expressed() -> None:
    p = policy_from_spec(spec(FaultSpec("allow_ports", {"ports_allowed": [443], "hosts": ["*.pb.com"]})))
    assert p.connect_ports is None
    assert p.unexpressed == ("fault 'allow_ports' scoped by hosts",)
    with pytest.raises(TargetSkipped, match="squid cannot express fault 'allow_ports' scoped by hosts"):
        p.skip_unexpressed("squid")


def test_a_fault_without_a_product_meaning_is_not_expressed_and_skips_every_product() -> None:
    p = policy_from_spec(spec(FaultSpec("socks_only", {})))
    assert p.unexpressed == ("fault 'socks_only'",)
    for product in ("tinyproxy", "squid", "mitmproxy", "proxy.py"):
        with pytest.raises(TargetSkipped, match=f"{product} cannot express fault 'socks_only'"):
            p.skip_unexpressed(product, shapes_downloads=True)


def test_throttle_is_a_rate_each_way_and_0_leaves_a_direction_unshaped() -> None:
    both = policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": 256})))
    assert (both.shape_down_kbps, both.shape_up_kbps, both.unexpressed) == (256.0, 256.0, ())
    down = policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": 128, "up_kbps": 0})))
    assert (down.shape_down_kbps, down.shape_up_kbps) == (128.0, None)
    split = policy_from_spec(spec(FaultSpec("throttle", {"down_kbps": 1000, "up_kbps": 384})))
    assert (split.shape_down_kbps, split.shape_up_kbps) == (1000.0, 384.0)
    default = policy_from_spec(spec(FaultSpec("throttle", {})))
    assert (default.shape_down_kbps, default.shape_up_kbps) == (384.0, 384.0)  # the fault's default rate
    # what a product's shaper cannot mean stays unexpressed
    assert policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": 128, "bucket_bytes": 65536}))).unexpressed == (
        "fault 'throttle' setting(s) bucket_bytes",
    )
    with pytest.raises(TargetSkipped, match="rate_kbps must be a number"):
        policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": "fast"})))


def test_a_shaped_link_skips_every_product_but_squid_and_squid_for_uploads() -> None:
    both = policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": 256})))
    down = policy_from_spec(spec(FaultSpec("throttle", {"rate_kbps": 256, "up_kbps": 0})))
    for product in ("tinyproxy", "mitmproxy", "proxy.py"):
        for p in (both, down):
            with pytest.raises(TargetSkipped, match=f"{product} cannot express fault 'throttle' on bandwidth"):
                p.skip_unexpressed(product)
    with pytest.raises(TargetSkipped, match="squid cannot express fault 'throttle' on uploads: delay_pools"):
        both.skip_unexpressed("squid", shapes_downloads=True)
    down.skip_unexpressed("squid", shapes_downloads=True)  # negative control: downloads alone are fine


def test_an_unknown_setting_of_a_known_fault_is_not_expressed() -> None:
    p = policy_from_spec(spec(FaultSpec("deny_hosts", {"patterns": ["*.teamviewer.com"], "status": 451})))
    assert p.unexpressed == ("fault 'deny_hosts' setting(s) status",)


def test_deny_and_allow_lists_keep_their_patterns_lower_cased() -> None:
    p = policy_from_spec(
        spec(
            FaultSpec("deny_hosts", {"patterns": ["*.TeamViewer.com"], "category": "Remote Access"}),
            FaultSpec("allow_hosts", {"patterns": ["*.pb.com"]}),
        )
    )
    assert p.deny_hosts == ("*.teamviewer.com",) and p.allow_hosts == ("*.pb.com",) and p.unexpressed == ()


def test_exclusions_direct_hosts_are_a_deny_list_but_internal_addresses_are_not_expressed() -> None:
    assert policy_from_spec(spec(FaultSpec("exclusions", {"direct_hosts": ["*.corp.example"]}))).deny_hosts == (
        "*.corp.example",
    )
    p = policy_from_spec(spec(FaultSpec("exclusions", {"internal_addresses": True})))
    assert p.unexpressed == ("fault 'exclusions' setting internal_addresses",)


def test_tls_inspect_with_a_bypass_list() -> None:
    p = policy_from_spec(spec(FaultSpec("tls_inspect", {"bypass": ["*.pb.com"]})))
    assert p.tls_inspect and p.tls_bypass == ("*.pb.com",)


PATTERNS = [
    "*.pb.com",
    "pb.com",  # exact: must not match subdomains
    "*.teamviewer.com",
    "r?---sn-*.gvt1.com",
    "[a-c]*.amazonaws.com",  # a set
    "[!a]*.google.com",  # a negated set
    "*",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_fnmatch_to_regex_matches_exactly_the_hosts_fnmatch_matches(pattern: str) -> None:
    hosts = [*load_catalog().hosts(), "pb.com", "pb.com.evil.example", "xpb.com"]
    regex = re.compile(fnmatch_to_regex(pattern))
    assert [h for h in hosts if regex.search(h)] == [h for h in hosts if fnmatch.fnmatchcase(h, pattern)]


@pytest.mark.skipif(shutil.which("grep") is None, reason="needs grep for a POSIX ERE engine")
@pytest.mark.parametrize("pattern", PATTERNS)
def test_fnmatch_to_regex_means_the_same_to_a_posix_ere_engine(pattern: str) -> None:
    # Squid (dstdom_regex) and tinyproxy (FilterType ere) compile these with regcomp(REG_EXTENDED).
    hosts = [*load_catalog().hosts(), "pb.com", "pb.com.evil.example"]
    done = subprocess.run(
        ["grep", "-E", "-i", fnmatch_to_regex(pattern)], input="\n".join(hosts) + "\n", capture_output=True, text=True, check=False
    )
    assert done.stdout.split() == [h for h in hosts if fnmatch.fnmatchcase(h, pattern)]
