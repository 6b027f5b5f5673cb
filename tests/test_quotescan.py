"""Every sentence that credits the guide quotes it exactly: the scanner, and the files it guards.

The scanner runs over the files the guide's data lives in (`GUARDED`), and over the whole
repository (proxy_lab/, scenarios/, README.md, docs/) with a small explicit list of known
exceptions (`KNOWN`), each with its reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_lab.catalog import load_catalog
from proxy_lab.guide import is_quoted
from proxy_lab.quotescan import (
    EXCEPTIONS,
    Misquote,
    credits_guide,
    fragments,
    main,
    quotations,
    scan,
    scan_text,
)

ROOT = Path(__file__).resolve().parents[1]
GUARDED = [
    ROOT / "proxy_lab" / "data" / "sendpro.toml",
    ROOT / "proxy_lab" / "catalog.py",
    ROOT / "proxy_lab" / "outcomes.py",
    ROOT / "proxy_lab" / "guide.py",
    ROOT / "proxy_lab" / "quotescan.py",
    ROOT / "proxy_lab" / "export.py",
    ROOT / "docs" / "assumptions.md",
    *sorted((ROOT / "scenarios").glob("sendpro-c-*.toml")),
]


def test_the_guarded_files_quote_the_guide_exactly() -> None:
    assert all(p.exists() for p in GUARDED), [str(p) for p in GUARDED if not p.exists()]
    assert scan(GUARDED) == []


# (file, quotation): quoted text the scanner flags in the repository, each knowingly left as it is.
KNOWN: dict[tuple[str, str], str] = {
    ("docs/serve.md", "via the existing proxy"): "the dashboard's own words, quoted near a mention of the guide",
}  # fmt: skip


def test_every_quotation_of_the_guide_in_the_repository_is_exact_but_the_known_exceptions() -> None:
    found = scan([ROOT / "proxy_lab", ROOT / "scenarios", ROOT / "README.md", ROOT / "docs"])
    flagged = {(Path(m.path).resolve().relative_to(ROOT).as_posix(), m.quotation) for m in found}
    assert flagged - set(KNOWN) == set()


def test_the_guarded_files_do_quote_the_guide_so_the_scan_is_not_vacuous() -> None:
    checked = [
        q
        for p in GUARDED
        for f in fragments(str(p), p.read_text("utf-8"))
        if credits_guide(f.text)
        for q in quotations(f.text)
    ]
    assert len(checked) >= 30


def test_every_assumption_of_the_catalog_is_explained_in_docs_assumptions() -> None:
    doc = (ROOT / "docs" / "assumptions.md").read_text("utf-8")
    missing = [a for a in load_catalog().assumptions if f"`{a}`" not in doc]
    assert missing == []


def test_a_misquote_on_a_line_that_credits_the_guide_is_found_with_its_line() -> None:
    source = 'x = 1\nRULE = "Guide, Proxy: \'SOCKS proxies are not supported\'"\n'
    assert scan_text("m.py", source) == [Misquote("m.py", 2, "SOCKS proxies are not supported")]
    fixed = source.replace("SOCKS proxies are not supported", "Socket Secure (SOCKS) protocol is not supported")
    assert scan_text("m.py", fixed) == []  # negative control


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("a.md", "The guide says 'the meter can use PAC files' somewhere.\n"),
        ("a.toml", "# The guide: \"the meter can use PAC files\"\nx = 1\n"),
        ("a.toml", "guide_section = \"URL Information: 'free of all SSL packet inspection'\"\n"),
        ("a.py", "# the guide's FAQ:\n# 'ports 80, 443 and 5938 only'\n"),  # a comment block
        ("a.py", "MSG = (f\"{x}: the guide says \" \"'all of it must tunnel'\")\n"),  # f-string, concatenated
    ],
)
def test_misquotes_are_found_in_every_kind_of_file(path: str, source: str) -> None:
    assert len(scan_text(path, source)) == 1


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("a.md", "Squid answers 'Access control configuration prevents your request' here.\n"),  # no credit
        ("a.md", "The guide's hosts resolve (ip-netns(8): \"ip netns exec automates handling of this\")\n"),
        ("a.md", "The guide's rule, on Squid: `acl SSL_ports port 443 80`.\n"),  # code, not a quotation
        ("a.md", "The guide's list in squid.conf: 'acl x port=80 443'.\n"),  # config text
        ("a.md", "The guide's meter's 'settings' are one word.\n"),  # apostrophes and a one-word quote
        ("a.md", "```sh\nproxy-lab check --fault 'tls_inspect: the guide says no'\n```\n"),  # a shell block
        ("a.md", "The guide:\n\n'a paragraph later is not credited'\n"),
    ],
)
def test_text_that_is_not_a_quotation_of_the_guide_is_left_alone(path: str, source: str) -> None:
    assert scan_text(path, source) == []


def test_the_exceptions_are_few_and_none_is_the_guides() -> None:
    assert len(EXCEPTIONS) <= 10
    assert not any(is_quoted(q) for q in EXCEPTIONS)


def test_the_command_line_exits_1_on_a_misquote_0_on_none_2_on_no_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("The guide says 'every port is open'.\n", encoding="utf-8")
    assert main([str(bad)]) == 1
    assert capsys.readouterr().out == f'{bad}:1: "every port is open"\n'
    bad.write_text("The guide says 'These URLs must be accessible'.\n", encoding="utf-8")
    assert main([str(bad)]) == 0
    assert main([]) == 2
