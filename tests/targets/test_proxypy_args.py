"""proxy.py's arguments: one Basic user at most, nothing else to configure."""

from __future__ import annotations

import pytest

from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec
from proxy_lab.targets import proxypy
from proxy_lab.targets.product import LabFacts, policy_from_spec


def args(facts: LabFacts, *faults: FaultSpec, **kw: object) -> list[str]:
    return proxypy.proxy_args(policy_from_spec(ProxySpec(faults=faults, **kw)), facts)  # type: ignore[arg-type]


def test_one_user_becomes_basic_auth(facts: LabFacts) -> None:
    a = args(facts, users={"meter": "Postage-2020!"})
    assert a[a.index("--basic-auth") + 1] == "meter:Postage-2020!"
    assert a[a.index("--hostname") + 1] == "127.0.0.1" and a[a.index("--port") + 1] == "3128"


def test_no_user_means_no_basic_auth(facts: LabFacts) -> None:
    assert "--basic-auth" not in args(facts)


@pytest.mark.parametrize(
    ("faults", "kw", "match"),
    [
        ((), {"users": {"meter": "a", "other": "b"}}, "2 users"),
        ((), {"users": {"meter": "a"}, "username_case_sensitive": False}, "case-insensitive"),
        ((FaultSpec("allow_ports", {"preset": "ssl_ports_only"}),), {}, "allow_ports"),
        ((FaultSpec("tls_inspect", {}),), {}, "tls_inspect"),
        ((FaultSpec("socks_only", {}),), {}, "fault 'socks_only'"),
    ],
)
def test_what_proxypy_cannot_express_is_skipped(facts: LabFacts, faults: tuple[FaultSpec, ...], kw: dict[str, object], match: str) -> None:
    with pytest.raises(TargetSkipped, match=match):
        args(facts, *faults, **kw)
