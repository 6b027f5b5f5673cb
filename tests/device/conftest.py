"""Fixtures for the Device's tests: one PKI per session (trustme CAs under a temporary directory)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_lab.pki import PKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.load(Path(tmp_path_factory.mktemp("device")) / "certs")
