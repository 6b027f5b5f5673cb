"""The fault registry: every fault is found, described, and built only from valid settings."""

from __future__ import annotations

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.proxy import FAULTS, make_fault
from proxy_lab.proxy.faults import Fault, describe_faults

IMPLEMENTED = {
    "allow_ports", "exclusions", "deny_hosts", "allow_hosts", "auth_schemes", "challenge_style",
    "dns_fail", "connect_quirks", "reset_after",
}  # fmt: skip


def test_every_fault_module_registers_itself_under_its_snake_case_name() -> None:
    assert IMPLEMENTED <= set(FAULTS)
    for name, cls in FAULTS.items():
        assert cls.name == name and issubclass(cls, Fault)


def test_every_fault_is_described_with_a_one_sentence_doc_and_typed_settings() -> None:
    described = {name: (doc, settings) for name, doc, settings in describe_faults()}
    assert IMPLEMENTED <= set(described)
    for name, (doc, settings) in described.items():
        assert doc.endswith("."), name
        keys = [s[0] for s in settings]
        assert keys[:2] == ["hosts", "ports"], name  # the common scoping comes first
        for key, typ, _default, helptext in settings:
            assert typ and helptext, (name, key)
    assert ("delay_ms", "int", 0) == described["dns_fail"][1][3][:3]
    assert described["dns_fail"][1][3][3].endswith("[ms]")  # the unit is shown


@pytest.mark.parametrize(
    ("name", "settings", "said"),
    [
        ("allow_portz", {}, "unknown fault 'allow_portz': expected one of"),
        ("allow_ports", {"port_allowed": [443]}, "fault allow_ports: unknown setting 'port_allowed'"),
        (
            "allow_ports",
            {"ports_allowed": "443"},
            "fault allow_ports: setting ports_allowed = '443': expected list[int]",
        ),
        ("allow_ports", {"ports_allowed": [True]}, "expected list[int]"),  # a bool is not a port
        ("allow_ports", {"preset": "squid"}, "expected ''|'ssl_ports_only'"),
        ("allow_ports", {"action": 403}, "expected '403'|'405'|'close'|'reset'"),  # a number, not the string
        ("allow_ports", {}, "give ports_allowed or preset"),
        ("allow_ports", {"ports_allowed": [70000]}, "outside 1-65535"),
        ("reset_after", {"after_bytes": -1}, "negative"),
        ("connect_quirks", {"status": 403}, "not a 2xx"),
        ("dns_fail", {"hosts": "*.pb.com"}, "setting hosts = '*.pb.com': expected list[str]"),
        ("dns_fail", {"ports": [0]}, "outside 1-65535"),
    ],
)
def test_bad_settings_are_rejected_naming_the_fault_the_key_and_what_was_expected(
    name: str, settings: dict[str, object], said: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_fault(name, settings)
    assert said in str(info.value)


def test_scoping_by_host_pattern_and_port() -> None:
    fault = make_fault("dns_fail", {"hosts": ["*.PB.com"], "ports": [443]})
    assert fault.applies("distservp1.pb.com", 443)
    assert not fault.applies("distservp1.pb.com", 80)
    assert not fault.applies("pb-ota.redbend.com", 443)
    assert make_fault("dns_fail", {}).applies("anything.test", 1)  # empty scope = everything


def test_integers_are_accepted_where_seconds_are_floats() -> None:
    fault = make_fault("dns_fail", {"delay_ms": 5})
    assert fault.delay_ms == 5  # type: ignore[attr-defined]


def test_the_package_imports_every_fault_module_so_none_is_left_unregistered() -> None:
    import pkgutil

    from proxy_lab.proxy import faults

    helpers = {"base", "httpsniff"}  # the framework and a scanner the faults share: no fault in them
    on_disk = {m.name for m in pkgutil.iter_modules(faults.__path__)} - helpers
    imported = {m.__name__.rsplit(".", 1)[1] for m in faults.FAULT_MODULES}
    assert on_disk == imported  # a new fault module must be added to faults/__init__.py
    for module in faults.FAULT_MODULES:  # and each registers at least one fault
        assert any(cls.__module__ == module.__name__ for cls in FAULTS.values()), module.__name__
