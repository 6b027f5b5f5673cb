"""The catalog match of a recorded target: which of the guide's endpoints a (host, port) is, if any."""

from __future__ import annotations

from proxy_lab.catalog import Catalog, Endpoint, load_catalog

NOT_IN_GUIDE = "not in the guide"


class CatalogIndex:
    """(host, port) -> the guide's endpoints there; the catalog match of a target."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self.catalog = catalog or load_catalog()
        self._by_target: dict[tuple[str, int], list[Endpoint]] = {}
        for service in self.catalog.services.values():
            for e in service.endpoints:
                if e.via_proxy:
                    self._by_target.setdefault((e.host.lower(), e.port), []).append(e)

    def match(self, host: str, port: int) -> list[Endpoint]:
        return self._by_target.get((host.lower().rstrip("."), port), [])
