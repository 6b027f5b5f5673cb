"""The vendored guide is the seed's text, and `is_quoted` accepts its words and nothing else."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from proxy_lab.guide import GUIDE_FILE, guide_text, is_quoted, normalise

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "sendpro-connectivity-guide.txt"


@pytest.mark.skipif(not SEED.exists(), reason="the seed is not beside the checkout (a clean clone)")
def test_the_vendored_guide_is_byte_identical_to_the_seed() -> None:
    vendored = resources.files("proxy_lab").joinpath(GUIDE_FILE).read_bytes()
    assert vendored == SEED.read_bytes()


def test_the_vendored_guide_is_the_connectivity_guide_rev_c() -> None:
    text = guide_text()
    assert "Connectivity Guide SV63189-gb Rev. C UK English Edition 19 August 2020" in text
    assert len(text) > 15000


@pytest.mark.parametrize(
    "quotation",
    [
        "These URLs must be accessible from the device, without any obstructions.",
        # across the PDF's line break and bullet: "...these URLs:\n\n- *.TeamViewer.com"
        "verify there are no content filters or anything similar blocking one of these URLs: *.TeamViewer.com",
        "Tap Settings (gear icon).",  # a numbered step, "- 1. Tap Settings (gear icon)."
        "Site used by tablet’s Android O/S to confirm connectivity",  # a typographic apostrophe
        "a minimum network bandwidth of 384 kbps   (upstream and\ndownstream)",  # odd whitespace
        "verify there are no content filters ... blocking one of these URLs",  # an elision
        "Device Management(uses Port 443 or 80 unless otherwise stated).",
        "SendPro C meter (Envelope Printing only)",
        "The SendPro+ system enables you to print Trackable Labels",
    ],
)
def test_the_guides_own_words_are_quoted(quotation: str) -> None:
    assert is_quoted(quotation)


@pytest.mark.parametrize(
    "quotation",
    [
        "These URLs must be accessible from the device without any obstructions.",  # a comma dropped
        "these URLs must be accessible from the device, without any obstructions.",  # case changed
        "SOCKS proxies are not supported",  # a paraphrase
        "The meter cannot use PAC files",  # never said
        "ports (80, 443 and 5938)",  # never said
        "verify there are no content filters ... blocking *.TeamViewer.com, *.dyngate.com",  # joined a list
        "protocol is not supported ... The proxy does not support allowing",  # an elision out of order
        "",
    ],
)
def test_anything_else_is_not_quoted(quotation: str) -> None:
    assert not is_quoted(quotation)


def test_normalise_drops_bullets_asterisks_and_typographic_marks_only() -> None:
    assert normalise("- *https://decometlb5.pb.com* (Port 443)\n• DNS lookup.") == "https://decometlb5.pb.com (Port 443) DNS lookup."
    assert normalise("o /dout.aspx?s=...&client=DynGate...POST") == "/dout.aspx?s=...&client=DynGate...POST"
    assert normalise("the guide\u2019s \u201crule\u201d \u2013 one") == "the guide's \"rule\" - one"
    assert normalise("order of words stays") != normalise("order words of stays")


def test_a_quotation_is_checked_against_a_given_text_when_one_is_given() -> None:
    assert is_quoted("brown fox", "The quick\n- brown fox")
    assert not is_quoted("These URLs must be accessible", "The quick brown fox")
