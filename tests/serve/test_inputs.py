"""The input the dashboard draws for each fault setting (proxy_lab/serve/inputs.py): read from the
setting's declared type, for every type a fault declares today, and the catalog the API serves."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from proxy_lab.serve.inputs import fault_catalog, input_for


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (bool, {"kind": "bool", "items": None, "choices": None, "optional": False}),
        (int, {"kind": "int", "items": None, "choices": None, "optional": False}),
        (float, {"kind": "float", "items": None, "choices": None, "optional": False}),
        (str, {"kind": "str", "items": None, "choices": None, "optional": False}),
        (Path, {"kind": "str", "items": None, "choices": None, "optional": False}),
        (float | None, {"kind": "float", "items": None, "choices": None, "optional": True}),
        (Literal["403", "close"], {"kind": "choice", "items": None, "choices": ["403", "close"], "optional": False}),
        (Literal["a"] | None, {"kind": "choice", "items": None, "choices": ["a"], "optional": True}),
        (list[int], {"kind": "list", "items": "int", "choices": None, "optional": False}),
        (list[str], {"kind": "list", "items": "str", "choices": None, "optional": False}),
        (tuple[int, ...], {"kind": "list", "items": "int", "choices": None, "optional": False}),
        (list[Literal["NTLM", "Basic"]], {"kind": "list", "items": "choice", "choices": ["NTLM", "Basic"], "optional": False}),
        # no input expresses these: the page takes their value as JSON
        (dict[str, int], {"kind": "json", "items": None, "choices": None, "optional": False}),
        (list[list[int]], {"kind": "json", "items": None, "choices": None, "optional": False}),
        (int | str, {"kind": "json", "items": None, "choices": None, "optional": False}),
    ],
)
def test_a_setting_type_gets_the_input_that_expresses_it(tp, expected):
    assert input_for(tp) == expected


def test_the_catalog_gives_every_setting_of_every_fault_an_input_and_the_choices_of_a_choice():
    catalog = {f["name"]: {s["name"]: s for s in f["settings"]} for f in fault_catalog()}
    assert len(catalog) >= 17
    kinds = {s["kind"] for settings in catalog.values() for s in settings.values()}
    assert kinds == {"bool", "int", "float", "str", "choice", "list"}  # no fault needs the JSON fallback
    assert catalog["allow_ports"]["action"]["choices"] == ["403", "405", "close", "reset"]
    assert catalog["allow_ports"]["ports_allowed"] | {"kind": "list", "items": "int"} == catalog["allow_ports"]["ports_allowed"]
    assert catalog["throttle"]["down_kbps"]["optional"] and catalog["throttle"]["down_kbps"]["default"] is None
    assert catalog["throttle"]["rate_kbps"]["kind"] == "float" and catalog["throttle"]["rate_kbps"]["default"] == 384.0
    assert catalog["auth_schemes"]["schemes"]["items"] == "choice"
