"""The Lab: PKI, Cloud and Resolver started together, shared by every scenario of a run."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from proxy_lab.catalog import Catalog, load_catalog
from proxy_lab.cloud import Cloud
from proxy_lab.pki import PKI
from proxy_lab.resolver import MapResolver


class Lab:
    """Everything on loopback: `async with Lab.create(certs_dir) as lab: ...`."""

    def __init__(self, pki: PKI, catalog: Catalog, cloud: Cloud) -> None:
        self.pki = pki
        self.catalog = catalog
        self.cloud = cloud

    @classmethod
    def create(cls, certs_dir: Path | None = None, catalog: Catalog | None = None) -> Lab:
        pki = PKI.load(certs_dir)
        catalog = catalog or load_catalog()
        return cls(pki, catalog, Cloud(pki, catalog))

    @property
    def resolver(self) -> MapResolver:
        return self.cloud.resolver

    async def __aenter__(self) -> Lab:
        await self.cloud.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.cloud.stop()
