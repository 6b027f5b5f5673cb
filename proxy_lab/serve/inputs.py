"""The input the dashboard draws for a fault setting, read from the setting's declared type.

`GET /api/catalog/faults` names each setting's type as code writes it (`float or none`,
`'403'|'405'`); the page needs it as data: `kind` is one of `bool`, `int`, `float`, `str`, `choice`
(with `choices`), `list` (with `items`, the kind of each element, and `choices` when those are a
choice) or `json` (a type no input expresses: the value is typed as JSON); `optional` says that
`None` is allowed (an empty input). Types are read as `proxy_lab.typed` converts them.
"""

from __future__ import annotations

import enum
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from proxy_lab.proxy.faults import FAULTS, describe_faults
from proxy_lab.typed import fields_of

_SCALARS: dict[Any, str] = {bool: "bool", int: "int", float: "float", str: "str", Path: "str"}


def _scalar(tp: Any) -> tuple[str, list[Any] | None] | None:
    if tp in _SCALARS:
        return _SCALARS[tp], None
    if get_origin(tp) is Literal:
        return "choice", list(get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "choice", [m.value for m in tp]
    return None


def input_for(tp: Any) -> dict[str, Any]:
    """`{kind, items, choices, optional}` for a setting of type `tp` (see the module docstring)."""
    optional = False
    if get_origin(tp) in (Union, types.UnionType):
        args = get_args(tp)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return {"kind": "json", "items": None, "choices": None, "optional": len(rest) < len(args)}
        optional, tp = len(rest) < len(args), rest[0]
    if (scalar := _scalar(tp)) is not None:
        return {"kind": scalar[0], "items": None, "choices": scalar[1], "optional": optional}
    args = get_args(tp)
    if get_origin(tp) is list or (get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis):
        item = _scalar(args[0]) if args else None
        if item is not None and item[0] != "bool":
            return {"kind": "list", "items": item[0], "choices": item[1], "optional": optional}
    return {"kind": "json", "items": None, "choices": None, "optional": optional}


def fault_catalog() -> list[dict[str, Any]]:
    """Every fault the lab knows, as `proxy-lab faults` lists them, each setting with its input."""
    catalog = []
    for name, doc, settings in describe_faults():
        hints = {f.name: tp for f, tp in fields_of(FAULTS[name])}
        catalog.append({
            "name": name, "doc": doc,
            "settings": [{"name": k, "type": t, "default": d, "help": h, **input_for(hints[k])}
                         for k, t, d, h in settings],
        })  # fmt: skip
    return catalog
