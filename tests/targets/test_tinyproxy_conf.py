"""tinyproxy.conf generation: Debian's defaults, ConnectPort lines, BasicAuth, a Filter for host lists."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

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


def test_users_become_basicauth_lines_without_a_realm_line(facts: LabFacts) -> None:
    text = conf(facts, users={"meter": "Postage-2020", "other": "x.y_z"}, realm="corp")
    lines = text.splitlines()
    assert "BasicAuth meter Postage-2020" in lines and "BasicAuth other x.y_z" in lines
    assert not any(line.startswith("BasicAuthRealm") for line in lines)  # tinyproxy 1.11.1 refuses it


@pytest.mark.slow
def test_the_installed_tinyproxy_starts_with_users_and_challenges_with_its_fixed_realm(tmp_path: Path) -> None:
    """The real binary accepts the generated file (an unknown directive is a "Syntax error" that stops it)."""
    exe = tinyproxy.binary()
    if exe is None:
        pytest.skip("tinyproxy is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmp_path.chmod(0o755)
    facts = LabFacts("127.0.0.1", port, "127.0.0.2", tmp_path / "pb.pem", tmp_path, tmp_path)
    text = conf(facts, users={"meter": "Postage-2020"}, realm="corp")
    if os.geteuid() != 0:  # tinyproxy switches to `User` only when started as root
        text = "\n".join(line for line in text.splitlines() if not line.startswith(("User ", "Group "))) + "\n"
    (tmp_path / "tinyproxy.conf").write_text(text)
    proc = subprocess.Popen([exe, "-d", "-c", str(tmp_path / "tinyproxy.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:  # bounded by the deadline
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not listen within 20 s"
                time.sleep(0.1)
        with sock:
            sock.sendall(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
            head = sock.recv(4096).decode("latin-1")
        assert head.startswith("HTTP/1.0 407")
        assert 'Proxy-Authenticate: Basic realm="Tinyproxy"' in head
    finally:
        proc.terminate()
        proc.wait(10)


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
