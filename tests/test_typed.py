"""The one validator: values converted by their annotations, and errors that name key, type and value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from proxy_lab.outcomes import Outcome
from proxy_lab.typed import Invalid, UnknownKeys, build, convert, encode, human, spec, type_name


@dataclass(frozen=True)
class Knobs:
    rate: float = 1.0
    count: int = field(default=1, metadata=spec(check=(lambda v: v > 0, "a positive integer")))
    mode: Literal["a", "b"] = "a"
    hosts: tuple[str, ...] = ()
    where: Path | None = None


@pytest.mark.parametrize(
    ("tp", "value", "expected"),
    [
        (int, True, "int"),  # a bool is not an integer
        (float, "1.5", "float"),  # no string parsing
        (Literal["403", "405"], 403, "'403'|'405'"),  # the number is not the string
        (list[int], [1, "2"], "int"),  # the item at k[1]
        (Outcome, "passed", "'pass'|"),
    ],
)
def test_a_value_of_another_type_is_refused_naming_the_type(tp: object, value: object, expected: str) -> None:
    with pytest.raises(Invalid) as info:
        convert(tp, value, "k")
    assert str(info.value).startswith("k") and expected in info.value.expected


def test_values_of_the_right_type_convert_and_widen() -> None:
    assert convert(float, 3, "k") == 3.0 and isinstance(convert(float, 3, "k"), float)
    assert convert(tuple[int, ...], [1, 2], "k") == (1, 2)
    assert convert(Outcome, "pass", "k") is Outcome.PASS
    assert convert(int | None, None, "k") is None


def test_a_table_builds_its_dataclass_and_names_the_failing_key() -> None:
    k = build(Knobs, {"rate": 2, "mode": "b", "hosts": ["x"], "where": "/tmp/x"})
    assert k == Knobs(rate=2.0, mode="b", hosts=("x",), where=Path("/tmp/x"))
    with pytest.raises(Invalid, match=r"^knobs.count: expected an integer, got 'a'$"):
        build(Knobs, {"count": "a"}, "knobs")
    with pytest.raises(Invalid, match=r"^knobs.count: expected a positive integer, got 0$"):
        build(Knobs, {"count": 0}, "knobs")
    with pytest.raises(UnknownKeys, match=r"^knobs: unknown key\(s\) colour; allowed: rate, count, mode, hosts, where$"):
        build(Knobs, {"colour": "red"}, "knobs")


def test_types_are_described_for_people_and_for_code() -> None:
    assert human(list[str]) == "a list of strings" and type_name(list[str]) == "list[str]"
    assert human(Literal["proxy", "direct"]) == "'proxy' or 'direct'" and type_name(int | None) == "int or none"


def test_encode_and_build_are_inverse_for_a_dataclass() -> None:
    k = Knobs(rate=0.5, count=3, mode="b", hosts=("a", "b"), where=Path("p"))
    assert encode(k) == {"rate": 0.5, "count": 3, "mode": "b", "hosts": ["a", "b"], "where": "p"}
    assert build(Knobs, encode(k)) == k
