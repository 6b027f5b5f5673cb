"""The recorder (proxy_lab/record/recorder.py): its size limit, pseudonyms and bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy_lab.errors import ConfigError
from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import Ctx
from proxy_lab.record import NOT_IN_GUIDE, Recorder


def _refuse(rec: Recorder, client: tuple[str, int] = ("192.0.2.7", 40000), host: str = "distservp1.pb.com", port: int = 80) -> None:
    ctx = Ctx(client=client, proxy=("127.0.0.1", 3128), host=host, port=port)
    rec.refused(ctx, Refusal(403, "Forbidden", why="test"))


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_refused_request_is_one_line_naming_the_catalog_match(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r.jsonl")
    _refuse(rec)
    _refuse(rec, host="unknown.example", port=443)
    rec.close()
    first, second = _lines(tmp_path / "r.jsonl")
    assert first["service"] == "distributor" and first["catalog"] == "distributor"
    assert first["endpoints"] == ["distributor/http://distservp1.pb.com:80/csd/dstproduct"]
    assert first["refused_by"] == "lab" and first["end"] == "refused"
    assert second["service"] is None and second["catalog"] == NOT_IN_GUIDE


def test_the_record_never_grows_past_its_size_limit_and_keeps_one_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = Recorder(path, max_bytes=8192)
    for n in range(500):
        _refuse(rec, client=("192.0.2.7", 1000 + n))
        assert path.stat().st_size <= 8192
    rec.close()
    rotated = tmp_path / "r.jsonl.1"
    assert rec.rotations > 1 and rotated.stat().st_size <= 8192
    assert _lines(path)[-1]["client"] == "192.0.2.7:1499"  # the newest line is in PATH
    # Negative control: without the limit, the same lines take far more than 8 KiB.
    big = Recorder(tmp_path / "big.jsonl")
    for n in range(500):
        _refuse(big, client=("192.0.2.7", 1000 + n))
    big.close()
    assert (tmp_path / "big.jsonl").stat().st_size > 10 * 8192


def test_anonymised_client_addresses_are_stable_pseudonyms_and_the_address_appears_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rec = Recorder(path, anonymise=True)
    _refuse(rec, client=("192.0.2.7", 1))
    _refuse(rec, client=("192.0.2.7", 2))
    _refuse(rec, client=("192.0.2.8", 3))
    rec.close()
    a, b, c = (line["client"] for line in _lines(path))
    assert a == b != c and str(a).startswith("client-")
    assert "192.0.2" not in path.read_text()
    plain = Recorder(tmp_path / "plain.jsonl")  # negative control
    _refuse(plain)
    plain.close()
    assert "192.0.2.7:40000" in (tmp_path / "plain.jsonl").read_text()


@pytest.mark.parametrize("max_bytes", [0, 100, -1])
def test_a_size_limit_too_small_to_hold_a_line_is_refused(tmp_path: Path, max_bytes: int) -> None:
    with pytest.raises(ConfigError, match="record max bytes"):
        Recorder(tmp_path / "r.jsonl", max_bytes=max_bytes)


def test_a_record_file_that_cannot_be_written_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"record file .*missing"):
        Recorder(tmp_path / "missing" / "r.jsonl")
