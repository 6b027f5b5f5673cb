"""The JUnit report validates against the schemas CI systems read, and each failure says expected vs observed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import pytest
import xmlschema

from proxy_lab.report import render

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def jenkins_schema() -> xmlschema.XMLSchema:
    """Jenkins' junit-10.xsd, as shipped in the package."""
    return xmlschema.XMLSchema(str(resources.files("proxy_lab").joinpath("data/junit.xsd")))


@pytest.fixture(scope="module")
def ant_schema() -> xmlschema.XMLSchema:
    """The strict Ant schema (windyroad): required properties, system-out, system-err, one child per testcase."""
    return xmlschema.XMLSchema(str(HERE / "windyroad-junit.xsd"))


def suites(xml: str) -> dict[str, ET.Element]:
    return {s.get("name", ""): s for s in ET.fromstring(xml).iter("testsuite")}


def case(suite: ET.Element, name: str) -> ET.Element:
    found = [c for c in suite.iter("testcase") if c.get("name") == name]
    assert len(found) == 1, [c.get("name") for c in suite.iter("testcase")]
    return found[0]


def test_the_report_of_every_kind_of_run_validates_against_both_junit_schemas(jenkins_schema, ant_schema, all_runs, hostile_run):
    xml = render([*all_runs, hostile_run], "junit")
    jenkins_schema.validate(xml)
    ant_schema.validate(xml)


def test_the_schemas_reject_a_file_that_breaks_them(jenkins_schema, ant_schema, squid_run):
    """Negative control: both schemas really check what the report relies on."""
    xml = render([squid_run], "junit")
    no_tests_count = xml.replace(' tests="3"', "", 1)  # testsuite@tests is required by both
    assert not jenkins_schema.is_valid(no_tests_count)
    assert not ant_schema.is_valid(no_tests_count)
    failure_without_type = xml.replace(' type="refused"', "", 1)  # failure@type is required by Ant
    assert not ant_schema.is_valid(failure_without_type)
    unknown_element = xml.replace("<system-err />", "<verdict>ok</verdict><system-err />", 1)
    assert not jenkins_schema.is_valid(unknown_element)


def test_one_testsuite_per_run_and_one_testcase_per_scenario_and_service(all_runs):
    by_name = suites(render(all_runs, "junit"))
    assert list(by_name) == ["baseline", "tls-inspection", "squid-stock", "squid-real [squid]", "tls-inspection [tinyproxy]"]
    squid = by_name["squid-stock"]
    assert [(c.get("classname"), c.get("name")) for c in squid.iter("testcase")] == [
        ("proxy-lab.squid-stock", "distributor"),
        ("proxy-lab.squid-stock", "funds"),
        ("proxy-lab.squid-stock", "remote_access"),
    ]


def test_suite_counts_match_their_testcases(all_runs, hostile_run):
    for suite in suites(render([*all_runs, hostile_run], "junit")).values():
        cases = list(suite.iter("testcase"))
        assert int(suite.get("tests", "-1")) == len(cases)
        for kind, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attr, "-1")) == sum(c.find(kind) is not None for c in cases), (suite.get("name"), kind)


def test_a_failure_states_expected_against_observed_with_the_evidence_and_the_remedy(squid_run):
    distributor = case(suites(render([squid_run], "junit"))["squid-stock"], "distributor")
    failure = distributor.find("failure")
    assert failure is not None
    assert failure.get("type") == "refused"
    message = failure.get("message", "")
    assert message.startswith("expected pass, observed refused at http://distservp1.pb.com/csd/dstproduct: ")
    assert "CONNECT -> 403 Forbidden; X-Squid-Error: ERR_ACCESS_DENIED 0" in message
    text = failure.text or ""
    assert "< X-Squid-Error: ERR_ACCESS_DENIED 0" in text  # the worst endpoint's transcript
    assert "remedy: allow CONNECT to port 80: on Squid add it to SSL_ports" in text
    assert "rule: Guide, Proxy:" in text
    assert "https://distservp1.pb.com/csd/dstproduct: pass" in text  # the other endpoint, for context


def test_expected_failures_and_passes_are_passing_testcases(baseline_run, tls_run):
    for suite in suites(render([baseline_run, tls_run], "junit")).values():
        assert all(len(c) == 0 for c in suite.iter("testcase")), suite.get("name")
        assert suite.get("failures") == "0" and suite.get("errors") == "0"


def test_a_skipped_run_is_skipped_and_a_setup_failure_is_an_error_not_a_failure(setup_run, skipped_run):
    by_name = suites(render([setup_run, skipped_run], "junit"))
    setup = by_name["squid-real [squid]"]
    errors = [c.find("error") for c in setup.iter("testcase")]
    assert errors and all(e is not None and e.get("type") == "setup_error" for e in errors)
    assert "squid did not start" in (errors[0].get("message") or "")
    assert setup.get("failures") == "0" and setup.get("errors") == "2"
    assert "setup failure: squid did not start" in (setup.findtext("system-err") or "")
    skipped = by_name["tls-inspection [tinyproxy]"]
    marks = [c.find("skipped") for c in skipped.iter("testcase")]
    assert marks and all(m is not None and "tinyproxy cannot inspect TLS" in (m.get("message") or "") for m in marks)


def test_a_setup_failure_before_any_service_still_yields_an_error_testcase(make, jenkins_schema, ant_schema):
    run = make.run("early", [], {}, setup_error="certs/ is read-only")
    xml = render([run], "junit")
    jenkins_schema.validate(xml)
    ant_schema.validate(xml)
    error = case(suites(xml)["early"], "setup").find("error")
    assert error is not None and error.get("message") == "certs/ is read-only"


def test_a_journal_problem_is_a_failing_testcase_of_its_own(baseline_run):
    baseline_run.journal_after_followup = 2
    journal = case(suites(render([baseline_run], "junit"))["baseline"], "journal")
    failure = journal.find("failure")
    assert failure is not None and failure.get("message") == "journal still holds 2 record(s) after the follow-up upload"


def test_hostile_evidence_stays_text_and_characters_xml_forbids_are_shown_escaped(hostile_run, jenkins_schema):
    xml = render([hostile_run], "junit")
    jenkins_schema.validate(xml)
    failure = case(suites(xml)["hostile"], "online_help").find("failure")
    assert failure is not None
    assert '<script>alert("x")</script> ]]>' in (failure.text or "")  # parsed back as text, not markup
    assert "\\x00\\x1b[31m" in (failure.text or "")
    assert "\x00" not in xml and "\x1b" not in xml
