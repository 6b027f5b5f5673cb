"""`proxy-lab run --target squid|tinyproxy --config FILE`: the scenarios' device settings against the user's own file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_lab.cli import main
from proxy_lab.productconf import find_product
from proxy_lab.targets.real import ENV_CONFIG

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
DATA = Path(__file__).resolve().parents[1] / "productconf" / "data"


@pytest.fixture(autouse=True)
def no_config_afterwards() -> Iterator[None]:
    """`--config` is handed to the namespace child through the environment: never let it leak."""
    yield
    os.environ.pop(ENV_CONFIG, None)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="proxy-lab-run-config-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(capsys: pytest.CaptureFixture[str], certs: Path, config: Path, *scenarios: str) -> tuple[int, dict[str, str]]:
    code = main(["--certs", str(certs), "run", *(str(SCENARIOS / s) for s in scenarios), "--target", "squid",
                 "--config", str(config), "--format", "json"])  # fmt: skip
    out = capsys.readouterr().out
    runs = json.loads(out)["runs"]
    return code, {r["scenario"]["id"]: (r.get("skipped") or r["status"]) for r in runs}


@pytest.mark.slow
@pytest.mark.root
def test_baseline_passes_a_file_that_allows_the_meters_ports_and_fails_debians_stock_file(
    capsys: pytest.CaptureFixture[str], workdir: Path, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or find_product("squid") is None:
        pytest.skip("needs root and squid")
    stock = (DATA / "debian-squid.conf").read_text()
    fixed = workdir / "squid.conf"
    fixed.write_text(stock.replace("\nacl SSL_ports port 443\n", "\nacl SSL_ports port 443 80 5228 5938\n", 1))
    code, runs = run(capsys, tmp_path, fixed, "baseline.toml", "tls-inspect.toml")
    assert runs["baseline"] == "met", runs
    assert "configures the proxy (faults tls_inspect); with --config your file is the proxy" in runs["tls-inspect"]
    assert code == 0
    # negative control: Debian's own file refuses CONNECT to port 80, so the baseline is not met
    code, runs = run(capsys, tmp_path, DATA / "debian-squid.conf", "baseline.toml")
    assert runs["baseline"] == "not_met" and code == 1, runs


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "lab", "--config", str(DATA / "debian-squid.conf")], "--config FILE goes with --target squid or --target tinyproxy"),
        (["--target", "squid", "--config", str(DATA / "debian-tinyproxy.conf")], "looks like a tinyproxy.conf"),
        (["--target", "tinyproxy", "--config", "/nonexistent.conf"], "/nonexistent.conf"),
    ],
)
def test_a_config_that_cannot_be_used_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code = main(["run", str(SCENARIOS / "baseline.toml"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert ENV_CONFIG not in os.environ
