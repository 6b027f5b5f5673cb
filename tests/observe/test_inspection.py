"""A fault on the lab side in front of a chained upstream: tls_inspect (a real mitmproxy engine)
re-signs what the meter sees; the record shows the corporate CA as issuer and `observe` names the
lab proxy, not the upstream, as the one that intercepted."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest

from proxy_lab.cloud import Cloud
from proxy_lab.observe import observe, read_records
from proxy_lab.outcomes import Outcome
from proxy_lab.pki import PB_ROOT_NAME, PKI
from proxy_lab.proxy import LabProxy, ProxyConfig, make_fault
from proxy_lab.proxy.chain import UpstreamProxy
from proxy_lab.proxy.faults.tls_inspect import TlsInspect
from proxy_lab.record import Recorder
from proxy_lab.resolver import MapResolver
from tests.proxy.proxy_testkit import TIMEOUT_S, run

HOST = "dlsdlp1.pb.com"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI.load(Path(tmp_path_factory.mktemp("observe-pki")) / "certs")


def _tls12(cafile: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # so the certificate travels in the clear
    return ctx


def _record(pki: PKI, tmp_path: Path, faults: list[Any], trust: Path) -> list[dict[str, Any]]:
    path = tmp_path / "r.jsonl"
    recorder = Recorder(path)

    async def main() -> None:
        cloud = Cloud(pki)
        await cloud.start()
        try:
            async with LabProxy(ProxyConfig(), cloud.resolver) as corp:
                config = ProxyConfig(upstream=UpstreamProxy(*corp.address), faults=faults, watcher=recorder)
                async with LabProxy(config, MapResolver()) as lab:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(*lab.address), TIMEOUT_S)
                    writer.write(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n".encode())
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
                    assert head.startswith(b"HTTP/1.1 200 "), head
                    await asyncio.wait_for(writer.start_tls(_tls12(trust), server_hostname=HOST), TIMEOUT_S)
                    writer.close()
                    await asyncio.sleep(0.2)
        finally:
            for fault in faults:
                await fault.stop()
            await cloud.stop()

    run(main(), timeout_s=60)
    recorder.close()
    return read_records([path])


def test_inspection_added_on_the_lab_side_is_recorded_and_observed_as_the_labs(pki: PKI, tmp_path: Path) -> None:
    fault = make_fault("tls_inspect", {})
    assert isinstance(fault, TlsInspect)
    fault.bind_pki(pki)
    (line,) = _record(pki, tmp_path, [fault], pki.corp_ca.cert)
    assert line["sni"] == HOST and line["tls_version"] == "TLS 1.2"
    assert "Corp Inspection CA" in line["issuer"] and line["lab_faults"]["tls_inspect"].startswith("through")
    obs = observe([line])
    downloads = next(s for s in obs.services if s.name == "downloads")
    assert downloads.outcome == Outcome.TLS_INTERCEPTED
    (finding,) = obs.findings
    assert finding.cause == "tls_inspect" and finding.refuser == "the lab proxy"


def test_without_the_fault_the_chained_tunnel_shows_the_pb_root_and_passes(pki: PKI, tmp_path: Path) -> None:
    (line,) = _record(pki, tmp_path, [], pki.pb_root.cert)
    assert PB_ROOT_NAME in line["issuer"] and "lab_faults" not in line
    assert observe([line]).findings == ()
