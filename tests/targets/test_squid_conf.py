"""squid.conf generation: Debian's access rules, the scenario's ports, users and host lists, nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from proxy_lab.errors import TargetSkipped
from proxy_lab.scenarios import FaultSpec, ProxySpec
from proxy_lab.targets import squid
from proxy_lab.targets.product import LabFacts, policy_from_spec


def conf(facts: LabFacts, *faults: FaultSpec, **kw: object) -> str:
    return squid.squid_conf(policy_from_spec(ProxySpec(faults=faults, **kw)), facts)  # type: ignore[arg-type]


def access_rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("http_access")]


def test_stock_preset_is_debians_ssl_ports_rule(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("allow_ports", {"preset": "ssl_ports_only"}))
    assert "acl SSL_ports port 443" in text.splitlines()
    assert "acl Safe_ports port 1025-65535" in text.splitlines()
    assert access_rules(text) == [
        "http_access deny !Safe_ports",
        "http_access deny CONNECT !SSL_ports",
        "http_access allow localhost manager",
        "http_access deny manager",
        "http_access allow localhost",
        "http_access deny all",
    ]


def test_without_allow_ports_ssl_ports_covers_every_port(facts: LabFacts) -> None:
    assert "acl SSL_ports port 1-65535" in conf(facts).splitlines()


def test_names_resolve_only_inside_the_namespace(facts: LabFacts) -> None:
    lines = conf(facts).splitlines()
    assert "hosts_file /etc/hosts" in lines
    assert "dns_nameservers 127.1.0.1" in lines
    assert "http_port 127.0.0.1:3128" in lines
    assert f"pid_filename {facts.workdir}/squid.pid" in lines


def test_users_are_checked_by_basic_ncsa_auth_before_localhost_is_allowed(facts: LabFacts) -> None:
    text = conf(facts, users={"meter": "Postage-2020!"}, realm="corp")
    lines = text.splitlines()
    assert f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {facts.workdir}/passwd" in lines
    assert "auth_param basic realm corp" in lines
    assert "auth_param basic casesensitive on" in lines
    rules = access_rules(text)
    assert rules.index("http_access deny !lab_users") < rules.index("http_access allow localhost")


def test_case_insensitive_user_names_use_squids_default_and_lower_case_file_entries(facts: LabFacts) -> None:
    policy = policy_from_spec(ProxySpec(users={"Meter": "pw"}, username_case_sensitive=False))
    assert "auth_param basic casesensitive off" in squid.squid_conf(policy, facts).splitlines()
    assert squid.password_file(policy).startswith("meter:$apr1$")
    strict = policy_from_spec(ProxySpec(users={"Meter": "pw"}))
    assert squid.password_file(strict).startswith("Meter:$apr1$")  # negative control


def test_deny_hosts_become_an_anchored_dstdom_regex(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("deny_hosts", {"patterns": ["*.teamviewer.com"]}))
    assert "acl lab_denied dstdom_regex -i \\.teamviewer\\.com$" in text.splitlines()
    rules = access_rules(text)
    assert rules.index("http_access deny lab_denied") < rules.index("http_access allow localhost")


def test_allow_hosts_deny_everything_else(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("allow_hosts", {"patterns": ["*.pb.com"]}))
    assert "http_access deny !lab_allowed" in access_rules(text)


def test_a_reset_refusal_is_deny_info_tcp_reset_and_a_close_cannot_be_expressed(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("allow_ports", {"ports_allowed": [443], "action": "reset"}))
    assert "deny_info TCP_RESET SSL_ports" in text.splitlines()
    assert "deny_info" not in conf(facts, FaultSpec("allow_ports", {"ports_allowed": [443]}))  # negative control
    with pytest.raises(TargetSkipped, match="action 'close'"):
        conf(facts, FaultSpec("allow_ports", {"ports_allowed": [443], "action": "close"}))


def test_tls_inspection_is_skipped_without_squid_openssl(facts: LabFacts) -> None:
    with pytest.raises(TargetSkipped, match="squid-openssl"):
        conf(facts, FaultSpec("tls_inspect", {}))


def test_a_fault_squid_cannot_express_is_skipped_never_passed(facts: LabFacts) -> None:
    with pytest.raises(TargetSkipped, match="squid cannot express fault 'socks_only'"):
        conf(facts, FaultSpec("socks_only", {}))
    with pytest.raises(TargetSkipped, match="squid cannot express fault 'throttle' on uploads"):
        conf(facts, FaultSpec("throttle", {"rate_kbps": 256}))


def test_a_download_throttle_is_one_delay_pool_starting_empty(facts: LabFacts) -> None:
    text = conf(facts, FaultSpec("throttle", {"rate_kbps": 128, "up_kbps": 0}))
    pool = [line for line in text.splitlines() if line.startswith("delay_")]
    assert pool == [
        "delay_pools 1",
        "delay_class 1 1",
        "delay_parameters 1 16000/16000",  # 128 kbit/s = 16,000 bytes/s, refilled once a second
        "delay_initial_bucket_level 0",
        "delay_access 1 allow all",
    ]
    assert not any(line.startswith("delay_") for line in conf(facts).splitlines())  # negative control


def test_the_launch_runs_squid_in_the_foreground_as_user_proxy(facts: LabFacts) -> None:
    if squid.binary() is None:
        pytest.skip("squid is not installed")
    launch = squid.launch(policy_from_spec(ProxySpec(users={"meter": "pw"})), facts)
    assert launch.argv[1:] == ("-N", "-d", "1", "-f", str(facts.workdir / "squid.conf"))
    assert launch.owner == "proxy" and set(launch.files) == {"squid.conf", "passwd"}
    assert launch.file_modes["passwd"] == 0o640


@pytest.mark.skipif(squid.binary() is None, reason="squid is not installed")
@pytest.mark.parametrize(
    "proxy",
    [
        ProxySpec(faults=(FaultSpec("allow_ports", {"preset": "ssl_ports_only"}),)),
        ProxySpec(users={"meter": "Postage-2020!"}, username_case_sensitive=False),
        ProxySpec(faults=(FaultSpec("deny_hosts", {"patterns": ["*.teamviewer.com", "pb-ota.redbend.com"]}),)),
        ProxySpec(faults=(FaultSpec("allow_hosts", {"patterns": ["*.pb.com"]}), FaultSpec("allow_ports", {"ports_allowed": [443], "action": "reset"}))),
        ProxySpec(faults=(FaultSpec("tls_inspect", {"bypass": ["*.pb.com", "pb-ota.redbend.com"]}),)),
        ProxySpec(faults=(FaultSpec("throttle", {"rate_kbps": 128, "up_kbps": 0}),)),
    ],
)
def test_squid_itself_parses_the_generated_configuration(proxy: ProxySpec, tmp_path: Path) -> None:
    if os.geteuid() != 0 and not os.access("/var/log/squid", os.W_OK):
        pytest.skip("squid -k parse wants root (or a writable /var/log/squid) here")
    exe = squid.binary()
    assert exe is not None
    bump = any(f.name == "tls_inspect" for f in proxy.faults)
    if bump and not squid.supports_ssl_bump(exe):
        pytest.skip("needs a squid built with OpenSSL (squid-openssl)")
    facts = LabFacts("127.0.0.1", 3128, "127.1.0.1", tmp_path / "pb.pem", tmp_path, tmp_path)
    if bump:  # the files the launch copies in: a CA with its key, and the upstream's root
        import trustme

        ca = trustme.CA()
        (tmp_path / "corp-ca.pem").write_bytes(ca.private_key_pem.bytes() + ca.cert_pem.bytes())
        (tmp_path / "pb-root.pem").write_bytes(trustme.CA().cert_pem.bytes())
    (tmp_path / "squid.conf").write_text(squid.squid_conf(policy_from_spec(proxy), facts, ssl_bump=bump))
    done = subprocess.run([exe, "-k", "parse", "-f", str(tmp_path / "squid.conf")], capture_output=True, text=True, timeout=30, check=False)
    complaints = [line for line in done.stderr.splitlines() if "ERROR" in line or "FATAL" in line or "WARNING" in line]
    assert done.returncode == 0 and not complaints, done.stderr[-2000:]


def test_squid_parse_test_has_a_negative_control(tmp_path: Path) -> None:
    exe = squid.binary()
    if exe is None or shutil.which(exe) is None:
        pytest.skip("squid is not installed")
    (tmp_path / "squid.conf").write_text("http_access allow no_such_acl\n")
    done = subprocess.run([exe, "-k", "parse", "-f", str(tmp_path / "squid.conf")], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode != 0 or "ERROR" in done.stderr or "FATAL" in done.stderr


def test_tls_inspection_with_an_openssl_squid_is_sslbump_with_the_corporate_ca(facts: LabFacts) -> None:
    policy = policy_from_spec(ProxySpec(faults=(FaultSpec("tls_inspect", {"bypass": ["*.pb.com"]}),)))
    lines = squid.squid_conf(policy, facts, ssl_bump=True).splitlines()
    port = next(line for line in lines if line.startswith("http_port"))
    assert f"ssl-bump tls-cert={facts.workdir}/corp-ca.pem generate-host-certificates=on" in port
    assert f"tls_outgoing_options cafile={facts.workdir}/pb-root.pem" in lines
    assert "on_unsupported_protocol tunnel all" in lines  # TeamViewer on 5938 and HTTP on 80 are not TLS
    bump = [line for line in lines if line.startswith("ssl_bump")]
    assert bump == ["ssl_bump peek lab_step1", "ssl_bump splice lab_bypass", "ssl_bump bump all"]
    assert "acl lab_bypass ssl::server_name_regex -i \\.pb\\.com$" in lines


def test_without_tls_inspect_nothing_is_bumped(facts: LabFacts) -> None:
    text = squid.squid_conf(policy_from_spec(ProxySpec()), facts, ssl_bump=True)
    assert "ssl_bump" not in text and "ssl-bump" not in text


def test_the_launch_of_an_sslbump_squid_copies_the_cas_and_creates_the_certificate_database(facts: LabFacts) -> None:
    exe = squid.binary()
    if exe is None or not squid.supports_ssl_bump(exe):
        pytest.skip("needs a squid built with OpenSSL (squid-openssl)")
    launch = squid.launch(policy_from_spec(ProxySpec(faults=(FaultSpec("tls_inspect", {}),))), facts)
    assert launch.copies == {"corp-ca.pem": facts.corp_confdir / "mitmproxy-ca.pem", "pb-root.pem": facts.pb_root}
    assert launch.prepare == ((squid.CERTGEN_HELPER, "-c", "-s", str(facts.workdir / "ssl_db"), "-M", "4MB"),)
