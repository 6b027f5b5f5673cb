"""A real browser (Debian's headless Chromium, offline, file://) shows the matrix and the TLS evidence side by side."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from proxy_lab.report import render
from proxy_lab.report.screenshot import Page, dump_dom, find_chromium, main, screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(find_chromium() is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(300),
]

# Visible as a person means it: laid out with a size, not hidden by CSS, not inside a closed <details>.
VISIBLE = """(sel) => {
  const el = document.querySelector(sel);
  if (!el) return null;
  const r = el.getBoundingClientRect();
  return {visible: el.checkVisibility({visibilityProperty: true, opacityProperty: true}),
          x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};
}"""


def box(page: Page, selector: str) -> dict | None:
    return page.evaluate(f"({VISIBLE})({json.dumps(selector)})")


@pytest.fixture(scope="module")
def report(tmp_path_factory, shared_runs) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render(shared_runs, "html"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def page(report: Path):
    with Page(report, width=1600, height=1200) as p:
        yield p


def test_the_dom_after_scripts_holds_the_matrix_and_a_tls_evidence_block(report):
    dom = dump_dom(report)
    assert '<html lang="en" class="js">' in dom  # the inline script ran (file://, offline, under the CSP)
    assert '<table id="matrix" class="matrix">' in dom
    assert '<div class="tls-evidence tls-intercepted" id="tls-evidence"' in dom
    assert 'class="chain chain-shown"' in dom and 'class="chain chain-expected"' in dom


def test_the_matrix_is_the_first_thing_on_screen(page):
    matrix = box(page, "#matrix")
    assert matrix is not None and matrix["visible"]
    assert matrix["width"] > 1000 and 0 < matrix["y"] < 1200  # within the first screenful
    rows = page.evaluate("document.querySelectorAll('#matrix tbody tr').length")
    assert rows == 5
    # Readable from the back of the room: the page's base type is at least 18 px.
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 18


def test_the_tls_evidence_shows_the_chain_shown_beside_the_chain_expected(page):
    shown = box(page, "#tls-evidence .chain-shown")
    expected = box(page, "#tls-evidence .chain-expected")
    assert shown is not None and expected is not None
    assert shown["visible"] and expected["visible"]
    assert shown["width"] > 400 and expected["width"] > 400 and shown["height"] > 100
    assert shown["x"] + shown["width"] <= expected["x"]  # left, then right
    assert abs(shown["y"] - expected["y"]) < 2  # on the same line
    text = page.evaluate("document.querySelector('#tls-evidence').innerText")
    assert "Corp Inspection CA - LAB ONLY - never install" in text
    assert "proxy-lab PB Root (lab only)" in text and "SHA-256" in text


def test_a_passing_cell_is_folded_until_its_matrix_link_is_clicked(page):
    """Negative control for visibility: the folded details really are hidden, then shown by the link."""
    target = "run-0-baseline-lab--funds"
    selector = f"#{target} pre.transcript"
    before = box(page, selector)
    assert before is not None and before["visible"] is False
    page.evaluate(f"document.querySelector('#matrix a[href=\"#{target}\"]').click()")
    page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    after = box(page, selector)
    assert after is not None and after["visible"] is True


def test_the_page_fetched_nothing(page):
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    assert page.evaluate("location.protocol") == "file:"


def test_a_report_without_interception_has_no_intercepted_chain_to_show(tmp_path, baseline_run, squid_run):
    """Negative control: passing TLS endpoints keep their chains folded away; nothing is marked intercepted."""
    path = tmp_path / "no-tls.html"
    path.write_text(render([baseline_run, squid_run], "html"), encoding="utf-8")
    with Page(path) as p:
        assert box(p, "#matrix")["visible"]
        assert box(p, "#tls-evidence") is None and box(p, ".tls-intercepted") is None
        folded = box(p, ".tls-evidence")
        assert folded is not None and folded["visible"] is False


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_a_screenshot_is_a_png_of_the_requested_size(report, tmp_path):
    png = screenshot(report, tmp_path / "shot.png", width=1600, height=2400)
    assert png_size(png) == (1600, 2400)


def test_the_screenshot_command_renders_a_given_report(report, tmp_path, capsys):
    out = tmp_path / "cmd.png"
    assert main(["--output", str(out), "--html", str(report), "--width", "800", "--height", "600"]) == 0
    assert png_size(out) == (800, 600)
    assert "wrote" in capsys.readouterr().err


def test_the_screenshot_command_refuses_a_missing_report(tmp_path, capsys):
    assert main(["--output", str(tmp_path / "x.png"), "--html", str(tmp_path / "missing.html")]) == 2
    assert "no such file" in capsys.readouterr().err
