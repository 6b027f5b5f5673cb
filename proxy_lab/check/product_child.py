"""The child of `check --product`: cloud, the user's product and the meter together, in the lab's namespace.

Started by `proxy_lab.check.product` as `ip netns exec <ns> python -m proxy_lab.check.product_child
PAYLOAD.json`, after the parent put the meter's address and the proxy's on the namespace's loopback
(`Namespace.add_client`). It binds the cloud on the real ports of the namespace's cloud address,
rewrites the user's file for the lab (`productconf.for_lab`: listen on the proxy's address, state in
the payload's temporary directory, DNS at the cloud), starts the product, and runs the field check's
traffic profile of the model through it as the meter does (every catalog endpoint with the lab's own
exchanges, the direct DNS queries, a signed download for bandwidth), from the meter's address.

It writes one JSON object on stdout: `{"kind": "results", "results": [...], "kbps": ..., "note": ...,
"proxy": "..."}`, or `{"kind": "fatal", "message": "...", "config_error": bool}` when the lab or the
product cannot start (`config_error`: the product refused the file: exit 2). It dies with its parent
(PR_SET_PDEATHSIG); SIGTERM and SIGINT stop the product before it exits.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from proxy_lab.netns_child import child_main, cloud_bind, emit


class _MeterResolver:
    """The lab's resolver, plus the proxy's own address (the meter is given an IP, as the guide says:
    "For Proxy Hostname enter the IP address of your proxy server")."""

    def __init__(self, lab_resolver: Any, proxy_host: str) -> None:
        self.lab_resolver, self.proxy_host = lab_resolver, proxy_host

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        if host == self.proxy_host:
            return [(host, port)]
        found: list[tuple[str, int]] = await self.lab_resolver.resolve(host, port)
        return found


async def _probe(payload: dict[str, Any]) -> dict[str, Any]:
    from proxy_lab.catalog import load_catalog
    from proxy_lab.check.probe import lab_bandwidth, probe_all
    from proxy_lab.cloud import Cloud
    from proxy_lab.device import Device, DeviceSettings, ProxySettings
    from proxy_lab.lab import Lab
    from proxy_lab.pki import PKI
    from proxy_lab.productconf import LabFacts, for_lab, parse_config, started
    from proxy_lab.productconf.validation import require_product
    from proxy_lab.typed import encode

    pki = PKI.load(Path(payload["certs_dir"]))
    catalog = load_catalog()
    address = payload["cloud_address"]
    cloud = Cloud(pki, catalog, host=address, bind=cloud_bind(Cloud(pki, catalog).kinds, address))
    model = parse_config(Path(payload["config"]), payload["product"])
    exe = require_product(model)
    facts = LabFacts(
        payload["proxy_host"], Path(payload["workdir"]), address, pki.pb_root.cert, port=payload["port"],
        meter_ip=payload["meter_ip"],
    )  # fmt: skip
    lab_config = for_lab(model, facts)
    timeout_s = float(payload["timeout_s"])
    settings = DeviceSettings(
        model=payload["model"], proxy=ProxySettings(*lab_config.listen, payload["user"], payload["password"]),
        connect_timeout_s=timeout_s, read_timeout_s=timeout_s, concurrency=int(payload["concurrency"]),
        max_probe_s=max(30.0, timeout_s * 6),
    )  # fmt: skip
    async with Lab(pki, catalog, cloud) as lab:
        with started(lab_config, exe) as running:
            device = Device(
                settings, pki, _MeterResolver(lab.resolver, lab_config.listen[0]), journal_path=Path(payload["journal"]),
                catalog=catalog, tls_context=pki.device_context(),
            )  # fmt: skip
            try:
                results = await probe_all(device, catalog.endpoints(payload["model"]), None)
                down = await lab_bandwidth(device, catalog)
                kbps, note = down.kbps, down.note
            finally:
                device.close()
            proxy = f"{model.product} (pid {running.pid}) with {model.path} at {_authority(*lab_config.listen)}"
    return {"kind": "results", "results": [encode(r) for r in results], "kbps": kbps, "note": note, "proxy": proxy}


async def _run(payload: dict[str, Any]) -> int:
    from proxy_lab.errors import ConfigError

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        emit(await _probe(payload))
    except ConfigError as exc:  # the product refused the file, or would not start with it
        emit({"kind": "fatal", "message": str(exc), "config_error": True})
        return 2
    except (OSError, RuntimeError, ValueError) as exc:
        emit({"kind": "fatal", "message": f"the lab could not run in the namespace: {type(exc).__name__}: {exc}", "config_error": False})
        return 1
    return 0


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(argv: list[str] | None = None) -> int:
    return child_main(argv, _run, "python -m proxy_lab.check.product_child PAYLOAD.json (started by proxy-lab check --product)")


if __name__ == "__main__":
    sys.exit(main())
