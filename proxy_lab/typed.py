"""The one type-driven validator: plain values (TOML, JSON) to typed values and dataclasses, and back.

Scenario files (`proxy_lab.scenarios`), fault settings (`make_fault` in
`proxy_lab.proxy.faults.base`) and the JSON that carries scenarios and runs into a namespace child
and back (`proxy_lab.runs`) are all read by `convert(tp, value, path)` and `build(cls, table, path)`,
driven by the type annotations: `int` (not a bool), `float` (an int is widened), `bool`, `str`,
`Literal[...]`, `X | None`, `list[X]`, `tuple[X, ...]`, `dict[K, V]`, enums (by value), `Path` (from a
string), dataclasses (from a table, unknown keys refused) and `Any`. A mismatch raises `Invalid`
with the path of the key, what was expected and the value given; `encode` goes the other way.

A field may declare, in its metadata (`spec(...)`), the phrase its errors say (`expected`) and a
condition on the converted value (`check`, with its own phrase). Without a phrase, an error names the
type: `describe=human` says "an integer", "a list of strings" (scenario files), `describe=type_name`
says "int", "list[str]" (fault settings, as `proxy-lab faults` lists them).

Why not a library: msgspec's ValidationError is one sentence ("Expected `int`, got `str` - at
`$.a.b`") without the value given, and cattrs converts leniently by default (`int("3")`) and reports
through nested ExceptionGroups with notes; both would need a rewording layer larger than this module,
and a new dependency.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

NoneType = type(None)
Describe = Callable[[Any], str]


class Invalid(ValueError):
    """A value does not fit its declared type: `path` (dotted key), `expected` (a phrase), `got`."""

    def __init__(self, path: str, expected: str, got: Any) -> None:
        self.path, self.expected, self.got = path, expected, got
        super().__init__(f"{path}: expected {expected}, got {got!r}" if path else f"expected {expected}, got {got!r}")


class UnknownKeys(Invalid):
    """A table has keys its dataclass does not declare; `keys` are those, `allowed` the declared ones."""

    def __init__(self, path: str, keys: list[str], allowed: list[str]) -> None:
        self.keys, self.allowed = keys, allowed
        ValueError.__init__(
            self, f"{path + ': ' if path else ''}unknown key(s) {', '.join(keys)}; allowed: {', '.join(allowed)}"
        )
        self.path, self.expected, self.got = path, f"one of {', '.join(allowed)}", keys


def spec(expected: str = "", check: tuple[Callable[[Any], bool], str] | None = None) -> dict[str, Any]:
    """Field metadata: `expected` is what a type error says; `check` is (condition, what it says)."""
    return {"expected": expected, "check": check}


def type_name(tp: Any) -> str:
    """A type as code writes it: `int`, `list[str]`, `'403'|'405'`, `float or none`."""
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return f"list[{type_name(get_args(tp)[0])}]" if get_args(tp) else "list"
    if origin is dict:
        k, v = get_args(tp) or (Any, Any)
        return f"dict[{type_name(k)}, {type_name(v)}]"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(tp))
    if tp is NoneType:
        return "none"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(repr(m.value) for m in tp)
    return getattr(tp, "__name__", str(tp))


_HUMAN = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "true or false"),
          str: ("a string", "strings"), Path: ("a path", "paths")}  # fmt: skip


def human(tp: Any) -> str:
    """A type as a sentence says it: `an integer`, `a list of strings`, `'proxy' or 'direct'`."""
    origin = get_origin(tp)
    if tp in _HUMAN:
        return _HUMAN[tp][0]
    if origin is Literal or (isinstance(tp, type) and issubclass(tp, enum.Enum)):
        values = get_args(tp) if origin is Literal else tuple(m.value for m in tp)
        return " or ".join(repr(v) for v in values)
    if origin in (list, tuple):
        item = get_args(tp)[0] if get_args(tp) else Any
        return f"a list of {_HUMAN[item][1] if item in _HUMAN else human(item) + ' items'}"
    if origin is dict:
        v = (get_args(tp) or (Any, Any))[1]
        return f"a table of {_HUMAN[v][1] if v in _HUMAN else human(v) + ' values'}"
    if origin in (Union, types.UnionType):
        return " or ".join(human(a) for a in get_args(tp) if a is not NoneType)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return "a table"
    return type_name(tp)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def convert(tp: Any, value: Any, path: str = "", describe: Describe = type_name) -> Any:
    """`value` as a value of type `tp`, or Invalid naming `path`."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        for a in get_args(tp):
            if value == a and type(value) is type(a):
                return a
        raise Invalid(path, describe(tp), value)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and NoneType in args:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and float in args:
            return value  # a number where `float | ...` is declared is kept as given (fault messages quote it)
        for a in args:
            if a is not NoneType:
                try:
                    return convert(a, value, path, describe)
                except Invalid:
                    continue
        raise Invalid(path, describe(tp), value)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise Invalid(path, describe(tp), value)
        args = get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise Invalid(path, describe(tp), value)
            return tuple(convert(a, v, f"{path}[{i}]", describe) for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [convert(item, v, f"{path}[{i}]", describe) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise Invalid(path, describe(tp), value)
        kt, vt = get_args(tp) or (Any, Any)
        return {convert(kt, k, path, describe): convert(vt, v, _join(path, k), describe) for k, v in value.items()}
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return build(tp, value, path, describe=describe)
        if issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                raise Invalid(path, describe(tp), value) from None
        if tp is Path and isinstance(value, str):
            return Path(value)
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, tp) and not (tp in (int, float) and isinstance(value, bool)):
            return value
        raise Invalid(path, describe(tp), value)
    raise TypeError(f"{path or 'value'}: no conversion to {tp!r}")  # an annotation this module does not know


def fields_of(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields a table may set (those of `__init__`), with their resolved annotations."""
    hints = _hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def build[T](cls: type[T], value: Any, path: str = "", *, given: Mapping[str, Any] | None = None,
             describe: Describe = human) -> T:  # fmt: skip
    """Dataclass `cls` from a table: every key declared, every value converted; `given` fields are
    taken as they are. An error names the field's whole value and what the field expects (a nested
    dataclass names its own keys)."""
    if not isinstance(value, Mapping):
        raise Invalid(path, "a table", value)
    given = dict(given or {})
    declared = fields_of(cls)
    names = [f.name for f, _ in declared]
    unknown = [str(k) for k in value if k not in names]
    if unknown:
        raise UnknownKeys(path, unknown, [n for n in names if n not in given])
    kwargs = dict(given)
    for f, tp in declared:
        if f.name in given:
            continue
        meta = f.metadata
        where = _join(path, f.name)
        expected = meta.get("expected") or describe(tp)
        if f.name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise Invalid(where, expected, None)
            continue
        raw = value[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[f.name] = build(tp, raw, where, describe=describe)
            continue
        try:
            converted = convert(tp, raw, where, describe)
        except Invalid as exc:
            raise Invalid(where, expected, raw) from exc
        if (check := meta.get("check")) is not None and not check[0](converted):
            raise Invalid(where, check[1], raw)
        kwargs[f.name] = converted
    return cls(**kwargs)


def decode(tp: Any, value: Any) -> Any:
    """A JSON value (from `encode`) back to type `tp`; Invalid when it does not fit."""
    return convert(tp, value, "", type_name)


def encode(obj: Any) -> Any:
    """Dataclasses, enums, paths, tuples and dicts as JSON values (dataclasses as tables of their fields)."""
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
