"""Dataclasses to JSON and back, for scenarios and runs crossing into a namespace child and out again.

`encode` turns dataclasses, enums, paths, tuples and dicts into JSON values; `decode(tp, value)`
rebuilds a value of type `tp` from its annotations (dataclasses, `list[X]`, `tuple[X, ...]`,
`dict[K, V]`, `X | None`, enums, `Path`, `Any`). Only types of this package cross, both sides run
the same code, so an unknown shape is a bug and raises TypeError.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

if TYPE_CHECKING:
    from proxy_lab.runner import ScenarioRun
    from proxy_lab.scenarios import Scenario

def encode(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, list | tuple):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    raise TypeError(f"cannot encode {type(obj).__name__} {obj!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def decode(tp: Any, value: Any) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return decode(arg, value)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError(f"{value!r} matches none of {tp}: {'; '.join(errors)}")
    if origin is list:
        return [decode(get_args(tp)[0], v) for v in _seq(value)]
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in _seq(value))
        return tuple(decode(a, v) for a, v in zip(args, _seq(value), strict=True))
    if origin is dict:
        ktype, vtype = get_args(tp)
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp}, got {value!r}")
        return {decode(ktype, k): decode(vtype, v) for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return decode_fields(tp, value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    if tp is Path:
        return Path(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise TypeError(f"expected {tp}, got {value!r}")


def _seq(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected an array, got {value!r}")
    return value


def decode_fields[T](cls: type[T], value: Any, **given: Any) -> T:
    """Rebuild dataclass `cls` from an object; fields in `given` are taken as they are."""
    if not isinstance(value, dict):
        raise TypeError(f"expected an object for {cls.__name__}, got {value!r}")
    hints = _hints(cls)  # type: ignore[arg-type]
    kwargs: dict[str, Any] = dict(given)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in given or f.name not in value or not f.init:
            continue
        kwargs[f.name] = decode(hints[f.name], value[f.name])
    return cls(**kwargs)


def decode_scenario(value: Any) -> Scenario:
    from proxy_lab.scenarios import Scenario

    return decode_fields(Scenario, value)


def encode_run(run: ScenarioRun) -> dict[str, Any]:
    """A run without its scenario (the receiving side has it already)."""
    out = encode(run)
    out.pop("scenario", None)
    return out


def decode_run(value: Any, scenario: Scenario) -> ScenarioRun:
    from proxy_lab.runner import ScenarioRun

    return decode_fields(ScenarioRun, value, scenario=scenario)
