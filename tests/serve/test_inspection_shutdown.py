"""A served lab with tls_inspect in force runs and stops without asyncio's "Task was destroyed but it
is pending!": the inspection engine (proxy_lab/proxy/inspection/engine.py) keeps a reference to each
of its relay connections' tasks while they run, and cancels and awaits those left when it stops.

The meter's run through the inspecting proxy is what used to show it: mitmproxy half-closes its side
of a relay connection while the relay still pumps the upstream's answer, and nothing but the
engine's own reference keeps that task alive. The garbage collector is asked to run while the lab
serves and after it stopped, so a task left unreferenced is destroyed (and reported) within the test.
"""

from __future__ import annotations

import gc
import logging

import pytest

from proxy_lab.serve.served import ServeConfig
from proxy_lab.serve.thread import ServedLabThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DESTROYED = "Task was destroyed but it is pending"


def destroyed(caplog: pytest.LogCaptureFixture) -> list[str]:
    # asyncio's default handler logs it on the "asyncio" logger; while mitmproxy runs, its own
    # handler logs it on "mitmproxy.master" ("Unhandled asyncio error: {...}"): any logger counts.
    return [r.getMessage()[:300] for r in caplog.records if DESTROYED in r.getMessage()]


def test_a_served_lab_with_tls_inspect_runs_and_stops_without_a_task_destroyed_pending(tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    with ServedLabThread(ServeConfig(interval_s=1.0, certs_dir=tmp_path)) as lab:
        lab.client.add_fault("tls_inspect")
        lab.client.wait_for("funds", "tls_intercepted", timeout_s=60)
        for _ in range(2):  # whole runs of the meter through the engine, collected after each
            lab.client.probe()
            gc.collect()
    gc.collect()
    assert destroyed(caplog) == []
