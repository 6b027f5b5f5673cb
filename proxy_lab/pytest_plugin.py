"""The proxy-lab pytest plugin: fixtures for a lab on loopback and for running scenarios.

Registered under `[project.entry-points.pytest11]`, so any project with proxy-lab installed can
write:

    def test_our_proxy_passes_baseline(proxy_lab_run):
        proxy_lab_run("scenarios/baseline.toml", target="http://127.0.0.1:3128")

`proxy_lab_run` fails the test when the run misses its expectation, naming each service with the
outcome expected and the one observed (and where); a run the target cannot express is skipped with
the target's reason. `check=False` returns the run whatever it shows, for a test to inspect.

Settings (override the fixtures, or use the ini options):
- `proxy_lab_certs_dir` (ini `proxy_lab_certs`): where the lab's certificates live;
- `proxy_lab_target` (ini `proxy_lab_target`): the default target (`lab`, a product name or a URL).

A served lab (`proxy-lab serve`) for a suite that flips faults around its own code:

    def test_our_client_survives_ssl_inspection(proxy_lab_served, proxy_lab_faults):
        with proxy_lab_faults.fault("tls_inspect"):
            ...  # point your client at proxy_lab_served.proxy_url
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from proxy_lab.client import LabClient
    from proxy_lab.lab import Lab
    from proxy_lab.runs import ScenarioRun
    from proxy_lab.serve.thread import ServedLabThread


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("proxy_lab_certs", "certificate directory for proxy-lab fixtures", default="")
    parser.addini("proxy_lab_target", "default proxy-lab target", default="lab")


class LabThread:
    """A lab running on its own event loop in a background thread, for synchronous tests."""

    def __init__(self, certs_dir: Path) -> None:
        from proxy_lab.lab import Lab

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-lab", daemon=True)
        self.thread.start()
        self.lab: Lab = Lab.create(certs_dir)
        self.call(self.lab.__aenter__(), timeout=60)
        self.errors: list[BaseException] = []
        self.loop.set_exception_handler(lambda _loop, ctx: self.errors.append(ctx.get("exception") or RuntimeError(ctx["message"])))

    def call(self, coro: Any, timeout: float = 120) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        try:
            self.call(self.lab.__aexit__(None, None, None), timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture(scope="session")
def proxy_lab_certs_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = request.config.getini("proxy_lab_certs")
    return Path(configured) if configured else tmp_path_factory.mktemp("proxy-lab-certs")


@pytest.fixture(scope="session")
def proxy_lab_target(request: pytest.FixtureRequest) -> str:
    return str(request.config.getini("proxy_lab_target") or "lab")


@pytest.fixture(scope="session")
def proxy_lab_session(proxy_lab_certs_dir: Path) -> Iterator[LabThread]:
    """One lab (PKI, cloud, resolver) for the whole session, on a background loop."""
    lab = LabThread(proxy_lab_certs_dir)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def proxy_lab(proxy_lab_session: LabThread) -> Iterator[Lab]:
    """The session's lab; cloud knobs are reset after each test and background errors re-raised."""
    yield proxy_lab_session.lab
    proxy_lab_session.lab.cloud.reset()
    if proxy_lab_session.errors:
        errors, proxy_lab_session.errors[:] = list(proxy_lab_session.errors), []
        raise errors[0]


@pytest.fixture
def proxy_lab_run(proxy_lab_session: LabThread, proxy_lab_target: str) -> Callable[..., ScenarioRun]:
    """Run one scenario file (or Scenario) against a target and return its ScenarioRun; with
    `check` (the default) a run that misses its expectation fails the test and a skipped one skips it."""
    from proxy_lab.runner import run_scenarios
    from proxy_lab.scenarios import Scenario, load_scenario

    def run(scenario: str | Path | Scenario, target: str | None = None, *, check: bool = True) -> ScenarioRun:
        sc = scenario if isinstance(scenario, Scenario) else load_scenario(Path(scenario))
        runs = proxy_lab_session.call(run_scenarios([sc], target=target or proxy_lab_target, lab=proxy_lab_session.lab))
        result: ScenarioRun = runs[0]
        if check and result.skipped:
            pytest.skip(f"{sc.id} on {result.target}: {result.skipped}")
        if check and not result.met:
            pytest.fail(
                f"scenario {sc.id} on {result.target} did not meet its expectation:\n  " + "\n  ".join(result.unmet()),
                pytrace=False,
            )
        return result

    return run


# -- a served lab (`proxy-lab serve`) for suites that flip faults around their own code ------------------
@pytest.fixture(scope="session")
def proxy_lab_served(proxy_lab_certs_dir: Path) -> Iterator[ServedLabThread]:
    """A served lab for the session (cloud, lab proxy, a meter probing every second, the fault API),
    on loopback with ephemeral ports: `.proxy_url` for your client, `.client` (LabClient) for faults."""
    from proxy_lab.serve.served import ServeConfig
    from proxy_lab.serve.thread import ServedLabThread

    with ServedLabThread(ServeConfig(interval_s=1.0, certs_dir=proxy_lab_certs_dir)) as served:
        yield served


@pytest.fixture
def proxy_lab_faults(proxy_lab_served: ServedLabThread) -> Iterator[LabClient]:
    """The served lab's LabClient; every fault is taken out of force (open tunnels cut) after the test."""
    yield proxy_lab_served.client
    proxy_lab_served.client.clear_faults(cut=True)
    if proxy_lab_served.errors:
        errors, proxy_lab_served.errors[:] = list(proxy_lab_served.errors), []
        raise errors[0]


@pytest.fixture
def proxy_lab_check(proxy_lab_certs_dir: Path) -> Callable[..., Any]:
    """Check your own proxy configuration: `proxy_lab_check("squid", "squid.conf", meter_ip=..., user=...)`.

    Runs the installed product with the file in a lab network namespace and the meter's traffic
    profile through it (`proxy-lab check --product`; needs root), and returns the
    `proxy_lab.check.product.ProductCheck`: `.exit_code` (0: the meter will work), `.report`
    (services, findings, verdict), `.refused_by`, `.lab_diff`, and `.fix` when `fix_out` is given.
    Keyword arguments: `user` ("NAME:PASSWORD"), `meter_ip`, `port`, `model`, `fix_out`, `timeout_s`.
    """
    import argparse

    from proxy_lab.check.product import ProductOptions, run_product_check

    def check(product: str, config: str | Path, **options: Any) -> Any:
        args = argparse.Namespace(
            product=product, config=str(config), user=options.pop("user", None), meter_ip=options.pop("meter_ip", None),
            port=options.pop("port", None), fix_out=options.pop("fix_out", None), model=options.pop("model", "sendpro-plus"),
            timeout=options.pop("timeout_s", 10.0), concurrency=16, certs=str(proxy_lab_certs_dir),
        )  # fmt: skip
        if options:
            raise TypeError(f"proxy_lab_check: unknown option(s) {', '.join(sorted(options))}")
        return run_product_check(ProductOptions.from_args(args))

    return check
