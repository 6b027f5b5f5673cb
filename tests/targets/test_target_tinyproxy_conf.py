"""tinyproxy.conf generation: Debian's defaults, ConnectPort lines, BasicAuth, a Filter for host lists."""

from __future__ import annotations

import pytest

from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec
from proxy_lab.targets import tinyproxy
from proxy_lab.targets.product import LabFacts, policy_from_spec


def conf(facts: LabFacts, *faults: FaultSpec, **kw: object) -> str:
    return tinyproxy.tinyproxy_conf(policy_from_spec(ProxySpec(faults=faults, **kw)), facts)  # type: ignore[arg-type]


def test_stock_has_no_connectport_line_so_every_port_is_allowed(facts: LabFacts) -> None:
    text = conf(facts)
    assert "ConnectPort" not in text
    assert "Allow 127.0.0.1" in text.splitlines() and "Timeout 600" in text.splitlines()
    assert f"Listen {facts.listen_host}" in text.splitlines() and f"Port {facts.listen_port}" in text.splitlines()


def test_allowed_ports_become_connectport_lines(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("allow_ports", {"ports_allowed": [443]}))
    assert [line for line in text.splitlines() if line.startswith("ConnectPort")] == ["ConnectPort 443"]


def test_users_become_basicauth_lines_with_the_realm(facts: LabFacts) -> None:
    text = conf(facts, users={"meter": "Postage-2020", "other": "x.y_z"}, realm="corp")
    lines = text.splitlines()
    assert "BasicAuth meter Postage-2020" in lines and "BasicAuth other x.y_z" in lines
    assert 'BasicAuthRealm "corp"' in lines


@pytest.mark.parametrize(
    ("users", "what"),
    [
        ({"meter": "Postage-2020!"}, "password"),  # '!' is outside tinyproxy's [-a-z0-9._]
        ({"meter": "two words"}, "password"),
        ({"me@corp": "pw"}, "user name"),
    ],
)
def test_credentials_outside_tinyproxys_grammar_are_skipped(facts: LabFacts, users: dict[str, str], what: str) -> None:
    with pytest.raises(TargetSkipped, match=f"tinyproxy cannot express the {what}"):
        conf(facts, users=users)


def test_case_insensitive_user_names_are_skipped(facts: LabFacts) -> None:
    with pytest.raises(TargetSkipped, match="case-insensitive"):
        conf(facts, users={"meter": "pw"}, username_case_sensitive=False)


def test_a_deny_list_is_a_filter_file_of_anchored_regexes(facts: LabFacts) -> None:
    policy = policy_from_spec(ProxySpec(faults=(FaultSpec("deny_hosts", {"patterns": ["*.teamviewer.com", "pb-ota.redbend.com"]}),)))
    text = tinyproxy.tinyproxy_conf(policy, facts)
    assert f'Filter "{facts.workdir}/filter"' in text.splitlines() and "FilterType ere" in text.splitlines()
    assert "FilterDefaultDeny" not in text
    assert tinyproxy.filter_file(policy) == "\\.teamviewer\\.com$\n^pb-ota\\.redbend\\.com$\n"


def test_an_allow_list_turns_the_filter_into_a_whitelist(facts: LabFacts) -> None:
    assert "FilterDefaultDeny Yes" in conf(facts, FaultSpec("allow_hosts", {"patterns": ["*.pb.com"]})).splitlines()


def test_a_refusal_other_than_403_is_skipped(facts: LabFacts) -> None:
    with pytest.raises(TargetSkipped, match="action 'reset'"):
        conf(facts, FaultSpec("allow_ports", {"ports_allowed": [443], "action": "reset"}))


def test_tls_inspection_is_skipped(facts: LabFacts) -> None:
    with pytest.raises(TargetSkipped, match="tls_inspect"):
        conf(facts, FaultSpec("tls_inspect", {}))


def test_the_launch_keeps_tinyproxy_in_the_foreground_with_the_generated_file(facts: LabFacts) -> None:
    if tinyproxy.binary() is None:
        pytest.skip("tinyproxy is not installed")
    launch = tinyproxy.launch(policy_from_spec(ProxySpec()), facts)
    assert launch.argv[1:] == ("-d", "-c", str(facts.workdir / "tinyproxy.conf"))
