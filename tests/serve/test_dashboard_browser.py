"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium through Debian's
chromium-driver): a click on the SSL-inspection toggle turns the funds tile intercepted with the
issuer shown, a second click turns it back to pass, and the page never reloads."""

from __future__ import annotations

import pytest

from proxy_lab.serve.browser import browser_missing, chromium, tile_outcome, wait_for_tile, wait_until
from proxy_lab.serve.served import ServeConfig
from proxy_lab.serve.thread import ServedLabThread

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or ""),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    with ServedLabThread(ServeConfig(interval_s=1.0, certs_dir=tmp_path_factory.mktemp("certs"))) as served:
        served.client.wait_for("funds", "pass", timeout_s=60)
        yield served


@pytest.fixture(scope="module")
def page(lab):
    with chromium(1600, 1100) as driver:
        driver.get(lab.ui_url)
        try:
            wait_until(driver, "return document.documentElement.dataset.ready === 'true'", timeout_s=60)
        except TimeoutError as exc:
            raise AssertionError(f"the page did not load: {text_of(driver, '#error')}") from exc
        yield driver


def text_of(driver, selector: str) -> str:
    return str(driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector))


def test_the_page_shows_a_tile_per_service_a_toggle_per_fault_and_the_presets(page, lab):
    wait_for_tile(page, "funds", "pass", timeout_s=30)
    tiles = page.execute_script("return [...document.querySelectorAll('#tiles .tile')].map(t => t.id)")
    assert tiles == [f"tile-{s['name']}" for s in lab.client.status()["services"]]
    faults = lab.client.request("GET", "/api/catalog/faults")
    assert page.execute_script("return document.querySelectorAll('#faults input.toggle').length") == len(faults) >= 17
    presets = page.execute_script("return [...document.querySelectorAll('#presets button')].map(b => b.innerText)")
    assert "SSL inspection" in presets and "SSL inspection with the guide's hosts bypassed" in presets
    assert "required" in text_of(page, "#tile-funds") and "recommended" in text_of(page, "#tile-remote_access")


def test_clicking_ssl_inspection_turns_funds_intercepted_with_the_issuer_and_clicking_again_turns_it_back(page, lab):
    page.execute_script("window.__sameDocument = true")  # gone if the page reloads
    wait_for_tile(page, "funds", "pass", timeout_s=30)
    assert "Corp Inspection CA" not in text_of(page, "#tile-funds")  # negative control
    page.find_element("id", "toggle-tls_inspect").click()
    wait_for_tile(page, "funds", "tls_intercepted", timeout_s=30)
    tile = text_of(page, "#tile-funds")
    assert "Corp Inspection CA" in tile and "PB Root" in tile  # the issuer shown beside the PB root
    assert "Fix:" in tile
    assert "o-worst" in page.find_element("id", "tile-funds").get_attribute("class")
    assert [f["name"] for f in lab.client.faults()] == ["tls_inspect"]
    page.find_element("id", "toggle-tls_inspect").click()
    wait_for_tile(page, "funds", "pass", timeout_s=30)
    assert "Corp Inspection CA" not in text_of(page, "#tile-funds")
    assert lab.client.faults() == []
    assert page.execute_script("return window.__sameDocument === true")
    timeline = text_of(page, "#timeline")
    assert "funds: pass → tls_intercepted" in timeline and "funds: tls_intercepted → pass" in timeline


def test_a_fault_changed_through_the_api_shows_on_the_page_without_a_reload(page, lab):
    entry = lab.client.add_fault("allow_ports", {"preset": "ssl_ports_only"})
    try:
        wait_until(page, "return document.getElementById('toggle-allow_ports').checked", timeout_s=10)
        wait_for_tile(page, "online_help", "refused", timeout_s=30)
    finally:
        lab.client.remove_fault(entry["id"])
    wait_for_tile(page, "online_help", "pass", timeout_s=30)
    assert tile_outcome(page, "funds") == "pass"


def test_a_preset_button_replaces_the_faults_in_force(page, lab):
    page.find_element("id", "preset-stock_squid").click()
    wait_for_tile(page, "online_help", "refused", timeout_s=30)
    assert [f["name"] for f in lab.client.faults()] == ["allow_ports"]
    active = "return [...document.querySelectorAll('#presets button.active')].map(b => b.id).join()"
    assert wait_until(page, active, timeout_s=10) == "preset-stock_squid"
    page.find_element("id", "preset-compliant").click()
    wait_for_tile(page, "online_help", "pass", timeout_s=30)
    assert lab.client.faults() == []
