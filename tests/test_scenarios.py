"""Scenario files are validated when they load; a bad one names the file, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.outcomes import Outcome
from proxy_lab.scenarios import load_scenario, load_scenarios

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
id = "x"
title = "t"
lesson = "l"
[device]
model = "sendpro-c"
[expect]
default = "pass"
services = { online_help = ["refused", "reset"] }
"""


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_shipped_scenario_loads() -> None:
    scenarios = load_scenarios([ROOT / "scenarios"])
    assert {"baseline", "basic-auth", "basic-auth-wrong-password", "basic-auth-missing", "direct"} <= {s.id for s in scenarios}


def test_a_good_scenario_loads_with_per_service_alternatives(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, GOOD))
    assert s.device.model == "sendpro-c"
    assert s.expect.for_service("online_help") == (Outcome.REFUSED, Outcome.RESET)
    assert s.expect.for_service("funds") == (Outcome.PASS,)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[expect]\ndefault = 'passed'\n", "expect.default"),  # not an outcome
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[device]\nmodel = 'sendpro-z'\n", "device.model"),  # unknown model
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[device]\nread_timeout_s = -1\n", "device.read_timeout_s"),
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[device]\nconcurrency = 'many'\n", "device.concurrency"),
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[expect.services]\nfundz = 'pass'\n", "expect.services.fundz"),  # typo
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\ncolour = 'red'\n", "colour"),  # unknown top-level key
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[proxy]\nusers = ['meter']\n", "proxy.users"),
        ("id = 'x'\ntitle = 't'\nlesson = 'l'\n[[proxy.faults]]\nports = [80]\n", "proxy.faults[0]"),  # no name
        ("title = 't'\nlesson = 'l'\n", "id"),
        ("id = 'x'\ntitle = 't'\nlesson = \n", "not valid TOML"),
    ],
)
def test_a_broken_scenario_file_is_rejected_naming_the_file_and_key(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(path) in str(info.value) and named in str(info.value)


def test_duplicate_ids_and_unknown_only_ids_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(ConfigError, match="already used"):
        load_scenarios([tmp_path])
    (tmp_path / "b.toml").unlink()
    with pytest.raises(ConfigError, match="no scenario with id nope"):
        load_scenarios([tmp_path], only=["nope"])


def test_a_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe id")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_scenario(path)


def test_a_bad_value_names_the_file_the_key_what_was_expected_and_what_was_given(tmp_path: Path) -> None:
    path = write(tmp_path, "id = 'x'\ntitle = 't'\nlesson = 'l'\n[device]\nconcurrency = 'a'\n", "x.toml")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: device.concurrency: expected an integer, got 'a'"
    path.write_text("id = 'x'\ntitle = 't'\nlesson = 'l'\n[device]\nconcurrency = 0\n")
    with pytest.raises(ConfigError, match=r"device.concurrency: expected a positive integer, got 0"):
        load_scenario(path)


def test_a_bad_fault_setting_is_rejected_when_the_file_loads(tmp_path: Path) -> None:
    text = "id = 'x'\ntitle = 't'\nlesson = 'l'\n[[proxy.faults]]\nname = 'throttle'\nrate_kbps = 'slow'\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: proxy.faults[0]: fault throttle: setting rate_kbps = 'slow': expected ")
    path.write_text(text.replace("'slow'", "96"))  # negative control: the same fault, set right
    assert load_scenario(path).proxy.faults[0].settings == {"rate_kbps": 96}


def test_target_is_not_a_scenario_key_and_the_error_says_where_it_goes(tmp_path: Path) -> None:
    path = write(tmp_path, "id = 'x'\ntitle = 't'\nlesson = 'l'\ntarget = 'squid'\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) target; .* chosen by `--target`"):
        load_scenario(path)


def test_tags_keep_only_the_scenarios_that_carry_one_of_them() -> None:
    tls = load_scenarios([ROOT / "scenarios"], tags=["tls"])
    assert {s.id for s in tls} == {"preset-mitmproxy-default", "preset-mitmproxy-passthrough", "preset-squid-ssl-bump"}
    either = load_scenarios([ROOT / "scenarios"], tags=["tinyproxy", "proxypy"])
    assert {s.id for s in either} == {"preset-tinyproxy-stock", "preset-tinyproxy-connectport-443", "preset-proxypy-basic-auth"}
    with pytest.raises(ConfigError, match="no scenario has tag tsl; tags in use: auth, chain, mitmproxy"):
        load_scenarios([ROOT / "scenarios"], tags=["tsl"])


def test_demo_with_a_tag_runs_only_the_tagged_scenarios(proxy_lab_certs_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from proxy_lab.cli import main

    code = main(["--certs", str(proxy_lab_certs_dir), "demo", "--scenarios", str(ROOT / "scenarios"), "--tag", "proxypy",
                 "--format", "json"])  # fmt: skip
    import json

    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["scenario"]["id"] for r in doc["runs"]] == ["preset-proxypy-basic-auth"]
    assert main(["demo", "--scenarios", str(ROOT / "scenarios"), "--tag", "nope"]) == 2
    assert "no scenario has tag nope" in capsys.readouterr().err
