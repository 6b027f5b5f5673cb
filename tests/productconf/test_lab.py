"""The lab rewrite changes only what the namespace needs, says why, and the real products accept it."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from proxy_lab.productconf import LabFacts, for_lab, parse_config, started
from proxy_lab.productconf.diff import changed_line_count
from proxy_lab.productconf.model import split_lines
from proxy_lab.productconf.run import write_files
from tests.productconf.productconf_helpers import STOCK_SQUID, STOCK_TINYPROXY, connect_via, require


def changed_lines(before: str, after: str) -> set[str]:
    return set(split_lines(before)) ^ set(split_lines(after))


def test_stock_squid_moves_its_port_and_what_it_writes_and_keeps_every_rule(facts: LabFacts) -> None:
    model = parse_config(STOCK_SQUID, "squid")
    lab = for_lab(model, facts)
    w = facts.workdir
    assert "http_port 127.0.0.1:3128\n" in split_lines(lab.text)
    for line in (f"pid_filename {w}/squid.pid", f"cache_log {w}/cache.log", f"coredump_dir {w}", f"dns_nameservers {facts.dns_server}"):
        assert line + "\n" in split_lines(lab.text)
    kept = [line for line in split_lines(lab.text) if line.startswith(("acl ", "http_access ", "include "))]
    assert kept == [line for line in split_lines(model.main.text()) if line.startswith(("acl ", "http_access ", "include "))]
    assert lab.listen == ("127.0.0.1", 3128) and lab.run_as == "proxy"
    assert all(c.why for c in lab.changes)
    assert changed_line_count(lab.diff) == len(changed_lines(model.main.text(), lab.text))
    assert lab.diff.startswith("--- yours/debian-squid.conf\n+++ lab/debian-squid.conf\n")


def test_stock_tinyproxy_listens_on_the_namespace_address_and_writes_in_the_lab(facts: LabFacts) -> None:
    model = parse_config(STOCK_TINYPROXY, "tinyproxy")
    lab = for_lab(model, facts)
    lines = list(split_lines(lab.text))
    assert "Listen 127.0.0.1\n" in lines and "Port 8888\n" in lines
    assert f'PidFile "{facts.workdir}/tinyproxy.pid"\n' in lines and f'LogFile "{facts.workdir}/tinyproxy.log"\n' in lines
    assert "Allow 127.0.0.1\n" in lines and "User tinyproxy\n" in lines  # kept
    assert len(lab.changes) == 3 and lab.run_as == "tinyproxy"


def test_a_file_with_several_ports_checks_the_chosen_one_and_drops_only_a_colliding_one(tmp_path: Path, facts: LabFacts) -> None:
    f = tmp_path / "squid.conf"
    f.write_text("http_port 10.0.0.5:3128\nhttp_port 10.0.0.6:3128 name=other\nhttp_port 8080\nhttp_access allow all\n")
    lab = for_lab(parse_config(f, "squid"), replace(facts, port=8080))
    lines = list(split_lines(lab.text))
    assert lines[:3] == ["http_port 127.0.0.1:3128\n", "# http_port 10.0.0.6:3128 name=other\n", "http_port 127.0.0.1:8080\n"]
    assert lab.listen == ("127.0.0.1", 8080) and "--port 8080" in lab.port_note
    assert "collide" in next(c.why for c in lab.changes if c.line == 2)


def test_sslbump_trusts_the_lab_pb_root_upstream_and_keeps_the_users_ca(tmp_path: Path, facts: LabFacts) -> None:
    f = tmp_path / "squid.conf"
    f.write_text(
        "http_port 3128 ssl-bump tls-cert=/etc/squid/corp-ca.pem\n"
        "tls_outgoing_options cafile=/etc/ssl/certs/ca-certificates.crt min-version=1.2\n"
        "sslcrtd_program /usr/lib/squid/security_file_certgen -s /var/lib/squid/ssl_db -M 8MB\n"
        "acl step1 at_step SslBump1\nssl_bump peek step1\nssl_bump bump all\nhttp_access allow all\n"
    )
    lab = for_lab(parse_config(f, "squid"), facts)
    lines = list(split_lines(lab.text))
    assert lines[0] == "http_port 127.0.0.1:3128 ssl-bump tls-cert=/etc/squid/corp-ca.pem\n"
    assert lines[1] == f"tls_outgoing_options cafile={facts.pb_root} min-version=1.2\n"
    assert lines[2] == f"sslcrtd_program /usr/lib/squid/security_file_certgen -s {facts.workdir}/ssl_db -M 8MB\n"
    assert "public roots" in next(c.why for c in lab.changes if c.line == 2)
    assert ("/usr/lib/squid/security_file_certgen", "-c", "-s", f"{facts.workdir}/ssl_db", "-M", "8MB") in lab.prepare


def test_parent_proxies_and_foreign_addresses_are_commented_out_with_the_reason(tmp_path: Path, facts: LabFacts) -> None:
    f = tmp_path / "squid.conf"
    f.write_text(
        "http_port 3128\ncache_peer parent.corp 3128 0 no-query default\nnever_direct allow all\n"
        "tcp_outgoing_address 10.1.1.1\ncache_effective_user no-such-user-here\nhttp_access allow all\n"
    )
    lab = for_lab(parse_config(f, "squid"), facts)
    lines = list(split_lines(lab.text))
    assert lines[1:4] == ["# cache_peer parent.corp 3128 0 no-query default\n", "# never_direct allow all\n", "# tcp_outgoing_address 10.1.1.1\n"]
    assert lines[4] == "cache_effective_user proxy\n" and lab.run_as == "proxy"


def test_an_included_file_that_must_change_is_copied_into_the_lab_and_the_users_stays(tmp_path: Path, facts: LabFacts) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "ports.conf").write_text("http_port 3128\n")
    (tmp_path / "conf.d" / "rules.conf").write_text("http_access allow all\n")
    f = tmp_path / "squid.conf"
    f.write_text("include conf.d/*.conf\n")
    lab = for_lab(parse_config(f, "squid"), facts)
    copy = facts.workdir / "include-1-ports.conf"
    assert split_lines(lab.text)[0] == f"include {copy} {tmp_path}/conf.d/rules.conf\n"
    assert lab.files[copy] == "http_port 127.0.0.1:3128\n"
    assert (tmp_path / "conf.d" / "ports.conf").read_text() == "http_port 3128\n"


def test_a_port_the_file_does_not_listen_on_is_refused(facts: LabFacts) -> None:
    from proxy_lab.productconf import ProductConfigError

    with pytest.raises(ProductConfigError, match=r"--port 9999: .* listens on 3128"):
        for_lab(parse_config(STOCK_SQUID, "squid"), replace(facts, port=9999))


SQUID_FILES = {
    "debian stock": STOCK_SQUID.read_text(),
    "several ports": "http_port 3128\nhttp_port 3129 intercept\nhttp_port 8080\nacl SSL_ports port 443\nhttp_access deny CONNECT !SSL_ports\nhttp_access allow all\n",
    "cache and logs": "http_port 3128\ncache_dir ufs /var/spool/squid 100 16 256\naccess_log daemon:/var/log/squid/access.log squid\n"
    "cache_store_log stdio:/var/log/squid/store.log\ndns_nameservers 8.8.8.8\nhttp_access allow all\n",
}


@pytest.mark.parametrize("name", list(SQUID_FILES))
def test_squid_itself_parses_every_rewritten_file(name: str, labdir: Path, facts: LabFacts) -> None:
    exe = require("squid")
    f = labdir / "squid.conf"
    f.write_text(SQUID_FILES[name])
    lab = for_lab(parse_config(f, "squid"), facts)
    write_files(lab)
    done = subprocess.run([exe, "-k", "parse", "-f", str(lab.path)], capture_output=True, text=True, timeout=120, check=False)
    complaints = [line for line in done.stderr.splitlines() if "ERROR" in line or "FATAL" in line]
    assert done.returncode == 0 and not complaints, done.stderr[-1500:]


def test_squid_parse_check_has_a_negative_control(labdir: Path, facts: LabFacts) -> None:
    exe = require("squid")
    f = labdir / "squid.conf"
    f.write_text("http_port 3128\nhttp_access allow no_such_acl\n")
    lab = for_lab(parse_config(f, "squid"), facts)
    write_files(lab)
    done = subprocess.run([exe, "-k", "parse", "-f", str(lab.path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 or "ERROR" in done.stderr or "FATAL" in done.stderr


@pytest.mark.slow
def test_the_rewritten_stock_squid_starts_on_loopback_and_answers_connect(loopback_facts: LabFacts, echo_server: int) -> None:
    exe = require("squid")
    lab = for_lab(parse_config(STOCK_SQUID, "squid"), loopback_facts)
    with started(lab, exe):
        status, tunnel = connect_via(lab.listen, f"127.0.0.1:{echo_server}", src="127.0.0.1")
    assert status.startswith("HTTP/1.1 403"), status  # the stock port rule: CONNECT to ports other than 443
    assert tunnel is None


@pytest.mark.slow
def test_the_rewritten_stock_tinyproxy_starts_on_loopback_and_tunnels(loopback_facts: LabFacts, echo_server: int) -> None:
    exe = require("tinyproxy")
    lab = for_lab(parse_config(STOCK_TINYPROXY, "tinyproxy"), loopback_facts)
    with started(lab, exe):
        status, tunnel = connect_via(lab.listen, f"127.0.0.1:{echo_server}", src="127.0.0.1")
        assert tunnel is not None, status
        with tunnel:
            tunnel.sendall(b"ping")
            assert tunnel.recv(4) == b"ping"
