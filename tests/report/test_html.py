"""The HTML report is one self-contained page: the matrix, the legend, and per cell its evidence, rule and remedy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from proxy_lab.report import render

VOID = {"meta", "br", "wbr", "img", "input", "link", "hr", "use", "rect", "circle", "path"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    items: list[Node | str] = field(default_factory=list)  # children and text, in document order

    @property
    def children(self) -> list[Node]:
        return [i for i in self.items if isinstance(i, Node)]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(i if isinstance(i, str) else i.text() for i in self.items)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def select(self, tag: str = "", cls: str = "", **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if (not tag or n.tag == tag)
            and (not cls or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str = "", cls: str = "", **attrs: str) -> Node:
        found = self.select(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} matches for {tag}.{cls} {attrs}"
        return found[0]


class TreeBuilder(HTMLParser):
    """Just enough of a DOM to ask questions of the report (the browser test checks real rendering)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].items.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].items.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].items.append(data)


def parse(text: str) -> Node:
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


@pytest.fixture
def page(all_runs) -> Node:
    return parse(render(all_runs, "html"))


def test_the_page_is_self_contained_and_forbids_loading_anything(all_runs):
    text = render(all_runs, "html")
    doc = parse(text)
    csp = doc.one("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp
    assert not doc.select("link") and not doc.select("img") and not doc.select("iframe")
    assert all("src" not in n.attrs for n in doc.walk())
    hrefs = [n.attrs["href"] for n in doc.walk() if "href" in n.attrs]
    assert hrefs and all(h.startswith("#") for h in hrefs)
    for style in doc.select("style"):
        assert "url(" not in style.text() and "@import" not in style.text() and "@font-face" not in style.text()
    assert not re.search(r"""=["'](?:https?:)?//""", text)  # no attribute points anywhere


def test_the_matrix_has_a_row_per_run_and_a_column_per_service(page):
    matrix = page.one("table", id="matrix")
    heads = [th.text() for th in matrix.one("thead").select("th")]
    assert heads == ["scenario", "model", "distrib", "funds", "remote", "verdict"]
    rows = matrix.one("tbody").select("tr")
    assert [r.attrs["data-status"] for r in rows] == ["met", "met", "not_met", "setup_error", "skipped"]
    assert {r.one("td", cls="model").text() for r in rows} == {"sendpro-plus"}  # the model column
    assert [r.one("th").text().strip() for r in rows] == [
        "baseline", "tls-inspection", "squid-stock", "squid-real [squid]", "tls-inspection [tinyproxy]",
    ]  # fmt: skip


def test_every_outcome_cell_shows_colour_symbol_and_word(page):
    cells = [td for td in page.one("table", id="matrix").select("td") if "data-outcome" in td.attrs]
    assert cells
    for td in cells:
        outcome = td.attrs["data-outcome"]
        assert any(c.startswith("o-") for c in td.classes)  # colour
        assert td.select("span", cls="sym")  # symbol
        assert outcome in td.one("span", cls="word").text()  # word
    refused = [td for td in cells if td.attrs["data-outcome"] == "refused"]
    assert refused and all("unexpected" in td.classes and "!" in td.text() for td in refused)


def test_every_link_in_the_page_leads_to_an_element_and_ids_are_unique(page):
    ids = [n.attrs["id"] for n in page.walk() if "id" in n.attrs]
    assert len(ids) == len(set(ids))
    targets = {n.attrs["href"][1:] for n in page.walk() if "href" in n.attrs}
    assert targets <= set(ids)
    matrix_links = [a.attrs["href"][1:] for a in page.one("table", id="matrix").select("a")]
    assert len(matrix_links) >= 10


def test_the_tls_cell_shows_the_chain_shown_beside_the_chain_expected(page, tls_run):
    cell_id = page.one("table", id="matrix").select("td", data_outcome="tls_intercepted")[0].one("a").attrs["href"][1:]
    detail = page.one(id=cell_id)
    block = detail.select("div", cls="tls-evidence")[0]
    shown, expected = block.one(cls="chain-shown"), block.one(cls="chain-expected")
    for chain, result_chain in ((shown, tls_run.results[1].evidence.chain_shown), (expected, tls_run.results[1].evidence.chain_expected)):
        certs = chain.select("li", cls="cert")
        assert len(certs) == len(result_chain)
        for li, cert in zip(certs, result_chain, strict=True):
            facts = dict(zip((dt.text() for dt in li.select("dt")), (dd.text() for dd in li.select("dd")), strict=True))
            assert facts == {
                "subject": cert.subject,
                "issuer": cert.issuer,
                "SHA-256": cert.sha256,
                "valid": f"{cert.not_before} to {cert.not_after}",
            }
    assert "Corp Inspection CA" in shown.select("li", cls="cert")[0].text()
    assert "proxy-lab PB Root (lab only)" in expected.select("li", cls="cert")[-1].text()
    # The differing issuer is marked, so the eye goes to it.
    assert any("differs" in dd.classes and "Corp Inspection CA" in dd.text() for dd in shown.select("dd"))


def test_runs_without_interception_show_matching_chains_and_nothing_marked_intercepted(baseline_run, squid_run):
    """Negative control: a chain anchored in the PB root is shown as such, with no difference marked."""
    doc = parse(render([baseline_run, squid_run], "html"))
    blocks = doc.select("div", cls="tls-evidence")
    assert blocks  # passing TLS endpoints still show what they were shown
    assert not doc.select(cls="tls-intercepted") and not doc.select(id="tls-evidence")
    assert not [dd for b in blocks for dd in b.select("dd") if "differs" in dd.classes]


def test_the_first_intercepted_chain_has_a_fixed_id_to_look_for(page):
    block = page.one(id="tls-evidence")
    assert {"tls-evidence", "tls-intercepted"} <= block.classes
    assert block.attrs["data-outcome"] == "tls_intercepted"


def test_a_failing_cell_shows_the_connect_exchange_timing_bytes_rule_and_remedy(page):
    squid = page.one("article", id="run-2-squid-stock-lab")
    assert "Lesson of squid-stock" in squid.one("p", cls="lesson").text()
    detail = squid.one("section", id="run-2-squid-stock-lab--distributor")
    assert "unexpected" in detail.classes
    transcript = detail.select("pre", cls="transcript")[0].text()
    assert "> CONNECT distservp1.pb.com:80 HTTP/1.1" in transcript
    assert "< X-Squid-Error: ERR_ACCESS_DENIED 0" in transcript
    worst = detail.select("div", cls="endpoint")[0].select("dl", cls="facts")[0]
    facts = dict(zip((dt.text() for dt in worst.select("dt")), (dd.text() for dd in worst.select("dd")), strict=True))
    assert facts["time"] == "10 ms" and facts["bytes"] == "88 sent, 3650 received"
    assert facts["X-Squid-Error"] == "ERR_ACCESS_DENIED 0"
    assert detail.select("p", cls="rule")[0].text().startswith("The guide: Guide, Proxy:")
    assert "allow CONNECT to port 80" in detail.select("p", cls="fix")[0].text()


def test_the_scenario_lesson_with_its_own_remedy_heads_its_details(page):
    tls = page.one("article", id="run-1-tls-inspection-lab")
    lesson = tls.one("p", cls="lesson").text()
    assert "re-signed certificate ends the handshake" in lesson
    assert "The scenario's fix: exempt the pb.com hosts from SSL inspection" in lesson
    assert tls.select("p", cls="scenario-remedy") == []  # the remedies under the cells are the observed causes'
    fixes = [n.text() for n in tls.select("p", cls="fix")]
    assert fixes and all("exempt this host from SSL inspection" in f for f in fixes)


def test_passing_cells_are_folded_and_failures_are_open(page):
    baseline = page.one("article", id="run-0-baseline-lab")
    assert {n.tag for n in baseline.select(cls="cell-detail")} == {"details"}
    squid = page.one("article", id="run-2-squid-stock-lab")
    tags = {n.attrs["data-service"]: n.tag for n in squid.select(cls="cell-detail")}
    assert tags == {"distributor": "section", "remote_access": "section", "funds": "details"}


def test_setup_failures_and_skips_are_listed_apart_from_outcomes(page):
    section = page.one("section", id="setup")
    assert "Setup failures and skipped runs (not outcomes)" in section.text()
    assert "squid did not start" in section.text() and "tinyproxy cannot inspect TLS" in section.text()
    setup_article = page.one("article", id="run-3-squid-real-squid")
    assert not setup_article.select(cls="cell-detail")
    assert "Setup failure (not an outcome)" in setup_article.one("p", cls="setup-error").text()


def test_evidence_from_the_network_is_escaped(hostile_run):
    text = render([hostile_run], "html")
    doc = parse(text)
    assert len(doc.select("script")) == 1  # ours, and only ours
    assert '<script>alert("x")</script>' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "\x00" not in text and "\x1b" not in text
    detail = doc.one("section", cls="cell-detail")
    assert '<script>alert("x")</script>' in detail.select("pre", cls="transcript")[0].text()  # shown as text


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_colour_pair_meets_wcag_aaa_contrast_for_a_projector():
    from proxy_lab.report.html_report import CSS

    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", CSS))
    families = sorted(name[: -len("-bg")] for name in colours if name.endswith("-bg"))
    assert families == ["auth", "bad", "ok", "setup", "skip", "warn", "worst"]
    for family in families:
        assert contrast(colours[f"{family}-bg"], colours[f"{family}-ink"]) >= 7, family
    assert contrast(colours["ink"], colours["paper"]) >= 7
    assert contrast(colours["muted"], colours["paper"]) >= 7
    assert contrast("#777777", "#ffffff") < 7  # negative control: mid-grey on white would fail
