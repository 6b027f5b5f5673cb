"""Fixtures for the Cloud's tests: one PKI per session, and one Cloud running on its own loop thread.

Tests talk to the cloud with plain blocking sockets (`cloud_testclient`), as any client would;
`cloud` resets the cloud's state and knobs after each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.cloud import Cloud
from proxy_lab.pki import PKI
from tests.cloud.cloud_testclient import LoopThread


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.load(Path(tmp_path_factory.mktemp("cloud")) / "certs")


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="session")
def session_cloud(pki: PKI, catalog: Catalog, loop_thread: LoopThread) -> Iterator[Cloud]:
    cloud = loop_thread.run(_make_cloud(pki, catalog))
    yield cloud
    loop_thread.run(cloud.stop())


async def _make_cloud(pki: PKI, catalog: Catalog) -> Cloud:
    cloud = Cloud(pki, catalog, download_bytes=16 * 1024, idle_timeout_s=5.0)
    await cloud.start()
    return cloud


@pytest.fixture
def cloud(session_cloud: Cloud) -> Iterator[Cloud]:
    """The session's running cloud, with fresh state and default knobs for each test."""
    session_cloud.state.reset()
    yield session_cloud
    session_cloud.state.reset()
