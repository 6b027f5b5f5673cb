"""Namespace mode: the files that keep every lookup inside, and a namespace that leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from proxy_lab import netns
from proxy_lab.catalog import load_catalog
from proxy_lab.errors import SetupError


def test_the_hosts_file_sends_every_named_host_of_the_guide_to_the_cloud() -> None:
    text = netns.hosts_file(load_catalog(), "127.1.0.1")
    mapped: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            mapped.setdefault(line.split()[1], line.split()[0])
    named = [h for h in load_catalog().hosts() if not h.replace(".", "").isdigit()]
    assert named and all(mapped[h] == "127.1.0.1" for h in named)
    assert "8.8.8.8" not in mapped  # an address is not a name
    assert mapped["localhost"] == "127.0.0.1"


def test_resolv_conf_points_at_the_cloud_only() -> None:
    lines = [line for line in netns.resolv_conf("127.1.0.1").splitlines() if line.startswith("nameserver")]
    assert lines == ["nameserver 127.1.0.1"]


def test_nsswitch_keeps_user_lookups_and_sets_hosts_to_files_then_dns() -> None:
    original = "passwd:         files systemd\nhosts:          files mdns4_minimal [NOTFOUND=return] dns myhostname\n"
    out = netns.nsswitch_conf(original)
    assert "passwd:         files systemd" in out.splitlines()
    assert [line.split(None, 1)[1] for line in out.splitlines() if line.startswith("hosts:")] == ["files dns"]


@pytest.mark.parametrize(
    ("name", "pid"),
    [("proxylab-1234", 1234), ("proxylab-1234-7", 1234), ("proxylab-x", None), ("other-1234", None)],
)
def test_a_namespace_name_gives_the_pid_of_the_run_that_made_it(name: str, pid: int | None) -> None:
    assert netns.owner_pid(name) == pid


def test_without_root_there_is_a_one_line_explanation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SetupError) as info:
        netns.require_root()
    assert "needs root" in str(info.value) and "\n" not in str(info.value)


def test_only_proxy_lab_namespaces_are_ever_torn_down() -> None:
    with pytest.raises(ValueError, match="not a proxy-lab namespace"):
        netns.teardown("some-other-namespace")


def _in_ns(name: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True, text=True, timeout=10, check=False).stdout


@pytest.mark.root
@pytest.mark.usefixtures("as_root")
def test_a_namespace_resolves_the_guides_hosts_to_the_cloud_and_is_gone_after() -> None:
    with netns.Namespace() as ns:
        assert ns.name in netns.list_namespaces()
        assert _in_ns(ns.name, "getent", "hosts", "decometlb20.pb.com").split()[0] == netns.CLOUD_ADDRESS
        assert "nameserver 127.1.0.1" in _in_ns(ns.name, "cat", "/etc/resolv.conf")
        assert "inet 127.1.0.1/32" in _in_ns(ns.name, "ip", "addr", "show", "lo")
        # negative control: outside the namespace the same name is not the cloud's
        outside = subprocess.run(["getent", "hosts", "decometlb20.pb.com"], capture_output=True, text=True, timeout=10, check=False)
        assert netns.CLOUD_ADDRESS not in outside.stdout
    assert ns.name not in netns.list_namespaces()
    assert not (netns.NETNS_ETC / ns.name).exists()


@pytest.mark.root
@pytest.mark.usefixtures("as_root")
def test_a_namespace_left_by_a_dead_run_is_removed_at_the_next_start() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    # what a run killed with SIGKILL leaves: its namespace, its /etc/netns files, a process inside
    stale = f"{netns.PREFIX}{dead.pid}-1"
    subprocess.run(["ip", "netns", "add", stale], check=True, timeout=10)
    (netns.NETNS_ETC / stale).mkdir(parents=True, exist_ok=True)
    (netns.NETNS_ETC / stale / "hosts").write_text("127.1.0.1 decometlb20.pb.com\n")
    sleeper = subprocess.Popen(["ip", "netns", "exec", stale, "sleep", "60"])
    mine = f"{netns.PREFIX}{os.getpid()}-999"  # a live run's namespace: must stay
    subprocess.run(["ip", "netns", "add", mine], check=True, timeout=10)
    try:
        removed = netns.cleanup_stale()
        assert stale in removed and mine not in removed
        assert stale not in netns.list_namespaces() and not (netns.NETNS_ETC / stale).exists()
        assert mine in netns.list_namespaces()
        assert sleeper.wait(timeout=10) is not None  # what ran in the stale namespace was stopped
    finally:
        sleeper.kill()
        netns.teardown(mine)
        netns.teardown(stale)


@pytest.mark.root
@pytest.mark.usefixtures("as_root")
def test_a_namespace_that_fails_halfway_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    ns = netns.Namespace()

    def broken_hosts(*a: object, **k: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(netns, "hosts_file", broken_hosts)
    with pytest.raises(OSError, match="disk full"):
        ns.create()
    assert ns.name not in netns.list_namespaces()
    assert not Path(netns.NETNS_ETC / ns.name).exists()
