"""The Device: the simulated SendPro C / SendPro+ that probes every endpoint of its model's services.

Owns `Device`: for each catalog endpoint it opens the transport (CONNECT through the proxy, or
direct), runs the endpoint's exchange, and turns what it observed into one Result. `run()` never
raises for network faults; each failure is an Outcome with its evidence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from proxy_lab.catalog import Catalog, Endpoint, load_catalog
from proxy_lab.device.classify import ProbeFailed, Verdict, Worked, classify
from proxy_lab.device.dnsprobe import dns_probe
from proxy_lab.device.journal import Journal
from proxy_lab.device.settings import DeviceSettings
from proxy_lab.device.transcript import Transcript
from proxy_lab.device.transport import Link, open_stream
from proxy_lab.device.upload import upload
from proxy_lab.device.wire import Stream, errno_name
from proxy_lab.device.workflows import EXCHANGES, Exchange
from proxy_lab.outcomes import Evidence, Outcome, Result
from proxy_lab.pki import PKI, summarize
from proxy_lab.resolver import Resolver
from proxy_lab.tasks import create_task


class Device:
    """A meter with its settings, its trust (the PB root only) and its transaction journal.

    `on_event`, when given, receives every transcript line as it happens, prefixed with the
    endpoint's URL (probes run concurrently, so bare lines could not be told apart).
    """

    def __init__(
        self,
        settings: DeviceSettings,
        pki: PKI,
        resolver: Resolver,
        *,
        journal_path: Path,
        catalog: Catalog | None = None,
        scenario: str = "",
        on_event: Callable[[str], None] | None = None,
        tls_context: ssl.SSLContext | None = None,
        field: bool = False,
    ) -> None:
        self.settings = settings
        self.pki = pki
        self.resolver = resolver
        self.catalog = catalog or load_catalog()
        self.scenario = scenario
        self.on_event = on_event
        self.journal = Journal(journal_path)
        # The meter trusts the PB root only; the field check verifies against the trust it is given.
        self._tls_context = tls_context or pki.device_context()
        self.field = field  # field check: no lab chain to compare with
        self._public_key = pki.signing_public_key()

    def __enter__(self) -> Device:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.journal.close()

    def endpoints(self, services: Iterable[str] | None = None) -> list[Endpoint]:
        """The endpoints of the model's services (all of them, or those named), in catalog order."""
        available = {s.name: s for s in self.catalog.for_model(self.settings.model)}
        if services is None:
            return [e for s in available.values() for e in s.endpoints]
        wanted = list(dict.fromkeys(services))
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise ValueError(
                f"service(s) {', '.join(unknown)} not offered on {self.settings.model}; "
                f"expected some of {', '.join(available)}"
            )
        return [e for n in wanted for e in available[n].endpoints]

    async def run(self, services: Iterable[str] | None = None) -> list[Result]:
        """Probe every endpoint, at most `settings.concurrency` at once; Results in catalog order."""
        endpoints = self.endpoints(services)
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(endpoint: Endpoint) -> Result:
            async with gate:
                return await self.probe(endpoint)

        tasks = [create_task(one(e), name=f"device probe {e.id}") for e in endpoints]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            raise

    async def probe(self, endpoint: Endpoint) -> Result:
        """Run one endpoint's exchange and classify what was seen; never raises for network faults."""
        s = self.settings
        evidence = Evidence()
        transcript = Transcript(evidence, label=endpoint.url, on_event=self.on_event)
        started = time.monotonic()
        try:
            async with asyncio.timeout(s.max_probe_s):
                worked = await self._probe(endpoint, evidence, transcript)
            verdict = classify(worked)
        except ProbeFailed as failed:
            verdict = failed.verdict
        except TimeoutError:
            transcript.note(f"probe abandoned after {s.max_probe_s:g} s")
            verdict = Verdict(
                Outcome.TIMEOUT,
                f"{endpoint.url}: the exchange did not finish within {s.max_probe_s:g} s "
                "(each read arrived in time, but too slowly in total)",
            )
        except OSError as exc:  # a socket error no layer recognised: still an outcome, not a crash
            transcript.note(f"unexpected socket error {errno_name(exc)}: {exc}")
            verdict = Verdict(
                Outcome.RESET, f"{endpoint.url}: the connection failed ({errno_name(exc)}: {exc})"
            )
        elapsed = time.monotonic() - started
        return Result(
            scenario=self.scenario,
            service=endpoint.service,
            endpoint=endpoint.url,
            outcome=verdict.outcome,
            detail=verdict.detail,
            evidence=evidence,
            elapsed_s=elapsed,
        )

    async def _probe(self, endpoint: Endpoint, evidence: Evidence, transcript: Transcript) -> Worked:
        s = self.settings
        if not endpoint.via_proxy:
            return await dns_probe(endpoint, s, self.resolver, evidence, transcript)
        if endpoint.transport == "tls" and not self.field:
            evidence.chain_expected = self.pki.expected_chain(endpoint.host)
        link = Link(endpoint, s, self.resolver, evidence, transcript, self._tls_context, summarize)
        setups: list[float] = []

        async def opener() -> Stream:
            stream = await open_stream(link)
            if link.setup_s is not None:
                setups.append(link.setup_s)
            return stream

        exchange = upload if endpoint.exchange == "upload" else EXCHANGES.get(endpoint.exchange)
        if exchange is None:
            raise ValueError(f"{endpoint.url}: no exchange {endpoint.exchange!r} in the device")
        x = Exchange(endpoint, s, self.journal, self._public_key, evidence, transcript, opener)
        worked = await exchange(x)
        return dataclasses.replace(
            worked,
            setup_s=max(setups) if setups else None,
            slow_setup_s=s.slow_setup_s,
            min_kbps=s.min_kbps,
        )
