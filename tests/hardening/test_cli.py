"""Safe defaults and bad input at the command line: a clear one-line reason and exit code 2.

`proxy-lab proxy` on a non-loopback address without `--user` must refuse before it binds anything
(an open proxy on a corporate LAN is an incident); with `--allow-open` or users it goes on. Nothing
here listens on a non-loopback address: `run_proxy` is replaced by a stub that records the
configuration it was given. tests/test_scenarios.py covers the scenario loader itself; these cover
the paths from `proxy_lab.cli.main` to the message on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import proxy_lab.proxy
from proxy_lab.cli import main
from proxy_lab.proxy import ProxyConfig


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[ProxyConfig]:
    """Stand-in for run_proxy: records each config instead of binding a socket."""
    configs: list[ProxyConfig] = []

    def fake_run_proxy(config: ProxyConfig, resolver: Any, stop_event: Any = None) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(proxy_lab.proxy, "run_proxy", fake_run_proxy)
    return configs


@pytest.mark.parametrize("listen", ["0.0.0.0:3128", "[::]:3128", "192.0.2.10:8080", "proxy.corp.test:3128"])
def test_an_open_proxy_on_a_non_loopback_address_refuses_to_start_and_says_why(
    listen: str, started: list[ProxyConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy", "--listen", listen]) == 2
    err = capsys.readouterr().err
    assert "open proxy" in err and "not a loopback address" in err
    assert "allow_open" in err or "--allow-open" in err  # it says how to proceed
    assert started == []  # refused before anything was bound


@pytest.mark.parametrize(
    ("extra", "allow_open", "users"),
    [
        (["--allow-open"], True, {}),
        (["--user", "meter:S3cret"], False, {"meter": "S3cret"}),
        (["--user", "meter:pa:ss", "--user", "other:x"], False, {"meter": "pa:ss", "other": "x"}),
    ],
)
def test_allow_open_or_users_let_a_non_loopback_proxy_start(
    extra: list[str], allow_open: bool, users: dict[str, str], started: list[ProxyConfig]
) -> None:
    assert main(["proxy", "--listen", "0.0.0.0:3128", *extra]) == 0
    (config,) = started
    assert config.listen == ("0.0.0.0", 3128)
    assert config.allow_open is allow_open and config.users == users


@pytest.mark.parametrize("listen", ["127.0.0.1:3128", "localhost:3128", "[::1]:3128", "127.8.9.10:3128"])
def test_a_loopback_proxy_starts_without_users(listen: str, started: list[ProxyConfig]) -> None:
    assert main(["proxy", "--listen", listen]) == 0
    assert len(started) == 1 and started[0].users == {}


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["proxy", "--listen", "nonsense"], "--listen 'nonsense'"),
        (["proxy", "--listen", "127.0.0.1:99999"], "--listen '127.0.0.1:99999'"),
        (["proxy", "--listen", "127.0.0.1:-1"], "--listen"),
        (["proxy", "--user", "nocolon"], "--user 'nocolon'"),
        (["proxy", "--user", ":password-only"], "--user"),
        (["proxy", "--fault", "nosuch"], "unknown fault 'nosuch'"),
        (["proxy", "--fault", "reset_after:after_bytes=abc"], "after_bytes"),
        (["proxy", "--fault", "reset_after:after_bytes"], "--fault"),
        (["proxy", "--max-connections", "0"], "max_connections"),
        (["proxy", "--max-connections", "many"], "--max-connections"),
        (["nosuch-command"], "nosuch-command"),
        (["run"], "PATH"),
        (["run", "scenarios/baseline.toml", "--format", "pdf"], "--format"),
    ],
)
def test_bad_command_line_input_exits_2_naming_the_option(
    argv: list[str], named: str, started: list[ProxyConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err
    assert started == []


SCENARIO_HEAD = 'id = "{id}"\ntitle = "t"\nguide_section = "Proxy"\nlesson = "One. Two."\n'


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ('id = "broken"\ntitle = [unclosed\n', "not valid TOML"),  # a TOML syntax error
        ("\n[[proxy.faults]]\nname = \"no_such_fault\"\n", "unknown fault 'no_such_fault'"),
        ("\n[[proxy.faults]]\nname = \"reset_after\"\nafter_bytes = \"lots\"\n", "after_bytes"),  # wrong type
        ("\n[[proxy.faults]]\nname = \"allow_ports\"\nno_such_setting = 1\n", "no_such_setting"),
        ("\n[device]\nmodel = \"franking-9000\"\n", "device.model"),
        ("\n[device]\nread_timeout_s = -1\n", "device.read_timeout_s"),
        ("\n[expect]\ndefault = \"fine\"\n", "fine"),  # not an outcome
        ("\n[expect]\nservices = { nosuch_service = \"pass\" }\n", "nosuch_service"),
        ("\n[proxy]\nusers = { meter = 7 }\n", "proxy.users"),
        ("\nunknown_top_level_key = 1\n", "unknown_top_level_key"),
    ],
)
def test_a_bad_scenario_file_exits_2_naming_the_file_and_the_key(
    body: str, named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad-scenario.toml"
    text = body if body.startswith("id =") else SCENARIO_HEAD.format(id="bad-scenario") + body
    path.write_text(text, encoding="utf-8")
    assert main(["--certs", str(tmp_path / "certs"), "run", str(path), "--format", "json", "-o", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and named in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "o.json").exists()


def test_run_on_a_missing_path_and_demo_with_an_unknown_id_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    certs = ["--certs", str(tmp_path / "certs")]
    assert main([*certs, "run", str(tmp_path / "nowhere.toml")]) == 2
    assert "nowhere.toml" in capsys.readouterr().err
    repo_scenarios = Path(__file__).resolve().parents[2] / "scenarios"
    assert main([*certs, "demo", "--scenarios", str(repo_scenarios), "--only", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err and "baseline" in err  # says what exists
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*certs, "run", str(empty)]) == 2
    assert "no scenario files" in capsys.readouterr().err


def test_an_unknown_target_exits_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    baseline = Path(__file__).resolve().parents[2] / "scenarios" / "baseline.toml"
    code = main(["--certs", str(tmp_path / "certs"), "run", str(baseline), "--target", "nosuch", "--format", "json",
                 "-o", str(tmp_path / "o.json")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown target 'nosuch'" in err and "squid" in err


def test_the_readme_says_never_to_install_the_lab_cas() -> None:
    from proxy_lab.pki import CORP_CA_NAME, PB_ROOT_NAME

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert "Never install either CA" in readme
    assert "LAB ONLY" in CORP_CA_NAME and "lab only" in PB_ROOT_NAME  # the names say so too
