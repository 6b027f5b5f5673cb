"""Fixtures for the target tests: lab facts for pure config generation, and guards for real runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from proxy_lab.targets.product import LabFacts


@pytest.fixture
def facts(tmp_path: Path) -> LabFacts:
    return LabFacts(
        listen_host="127.0.0.1",
        listen_port=3128,
        dns_server="127.1.0.1",
        pb_root=Path("/lab/certs/pb-root.pem"),
        corp_confdir=Path("/lab/certs/mitmproxy"),
        workdir=tmp_path,
    )


@pytest.fixture
def as_root() -> None:
    """Skip unless namespace mode can run here (root, Linux, `ip`)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: namespace mode creates network namespaces (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("needs the ip command (iproute2)")
