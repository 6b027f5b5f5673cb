"""Fixtures for the product-config tests: Debian's stock files, lab facts, real products on loopback."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.productconf import LabFacts
from tests.productconf.productconf_helpers import METER, free_port
from tests.sockkit import serving


@pytest.fixture
def labdir() -> Iterator[Path]:
    """A temporary directory the product's account can reach (pytest's tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="proxy-lab-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pb_root() -> Iterator[Path]:
    import trustme

    d = Path(tempfile.mkdtemp(prefix="proxy-lab-pb-", dir="/tmp"))
    d.chmod(0o755)
    ca = trustme.CA()
    (d / "pb-root.pem").write_bytes(ca.cert_pem.bytes())
    yield d / "pb-root.pem"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def facts(labdir: Path, pb_root: Path) -> LabFacts:
    # DNS on a loopback address where nothing answers: the product never asks the machine's resolver
    return LabFacts("127.0.0.1", labdir / "lab", "127.0.0.2", pb_root, meter_ip=METER)


@pytest.fixture
def loopback_facts(facts: LabFacts) -> LabFacts:
    """Facts for a real product on loopback: a free port instead of the file's."""
    from dataclasses import replace

    return replace(facts, bind_port=free_port())


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP echo server on 127.0.0.1 (the CONNECT target): its port."""

    def echo(conn: socket.socket) -> None:
        while data := conn.recv(4096):
            conn.sendall(data)

    with serving(echo) as port:
        yield port
