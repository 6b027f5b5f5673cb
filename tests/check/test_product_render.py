"""The product check's report as Markdown and JUnit, from a report `summarize` builds (no product started)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import xmlschema

from proxy_lab.catalog import load_catalog
from proxy_lab.check.product import ProductCheck
from proxy_lab.check.product_render import render_product
from proxy_lab.check.verdict import summarize
from proxy_lab.outcomes import Evidence, Outcome, Result

SCHEMAS = (
    resources.files("proxy_lab").joinpath("data/junit.xsd"),
    Path(__file__).resolve().parents[1] / "report" / "windyroad-junit.xsd",
)


def product_check(refuse_port_80: bool) -> ProductCheck:
    catalog = load_catalog()
    results = []
    for e in catalog.endpoints("sendpro-plus"):
        if refuse_port_80 and e.port == 80:
            ev = Evidence(transcript=[f"> CONNECT {e.host}:80 HTTP/1.1", "< HTTP/1.1 403 Forbidden"], connect_status=403,
                          connect_reason="Forbidden", connect_headers=[("X-Squid-Error", "ERR_ACCESS_DENIED 0")])  # fmt: skip
            results.append(Result("", e.service, e.url, Outcome.REFUSED, f"proxy refused CONNECT {e.host}:80: 403 Forbidden", ev, 0.01))
        else:
            results.append(Result("", e.service, e.url, Outcome.PASS, "ok", Evidence(connect_status=200), 0.01))
    report = summarize("squid at 198.18.0.1:3128", "sendpro-plus", catalog, results)
    refused = {f.cause.id: "`http_access deny CONNECT !SSL_ports` (squid.conf line 1532)" for f in report.findings}
    return ProductCheck("squid", Path("/etc/squid/squid.conf"), "10.20.30.40", "the meter uses port 3128", "--- yours/squid.conf\n+++ lab/squid.conf\n",
                        [], report, refused_by=refused)  # fmt: skip


def test_junit_has_a_case_per_service_and_per_finding_and_validates_against_both_schemas() -> None:
    failing = render_product(product_check(True), "junit")
    passing = render_product(product_check(False), "junit")
    for schema in SCHEMAS:
        s = xmlschema.XMLSchema(str(schema))
        s.validate(failing)
        s.validate(passing)
        assert not s.is_valid(failing.replace(' failures="', ' fails="', 1))  # negative control: the schema checks
    suite = ET.fromstring(failing).find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    services = [n for n in cases if n and not n.startswith("finding: ")]
    assert len(services) == len(product_check(True).report.services)
    assert cases["distributor (required)"].find("failure") is not None
    assert cases["funds (required)"].find("failure") is None
    findings = [c for n, c in cases.items() if n and n.startswith("finding: ")]
    assert findings and all(c.find("failure") is not None for c in findings)
    assert "http_access deny CONNECT !SSL_ports" in (findings[0].findtext("failure") or "")
    assert ET.fromstring(passing).find("testsuite").get("failures") == "0"  # type: ignore[union-attr]


def test_markdown_gives_the_verdict_the_rule_that_refused_and_the_lab_diff() -> None:
    text = render_product(product_check(True), "markdown")
    assert "**Verdict:** the meter will NOT work" in text
    assert "refused by `http_access deny CONNECT !SSL_ports` (squid.conf line 1532)" in text
    assert "```diff\n--- yours/squid.conf" in text
    assert "**Verdict:** the meter will work" in render_product(product_check(False), "markdown")
