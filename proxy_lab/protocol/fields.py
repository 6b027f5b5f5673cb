"""Value checks shared by every builder and parser of the protocol: ids, tokens, amounts, counts, dates.

Each returns the value in its wire form or raises `ValueError` naming what was seen and what was
expected, so a builder refuses to send what its parser would refuse to read.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

METER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
AMOUNT = re.compile(r"^[0-9]{1,9}\.[0-9]{2}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_REGISTER = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,4})?$")


def check(pattern: re.Pattern[str], value: object, what: str, expected: str) -> str:
    """`value` when it is a string matching `pattern`; else ValueError "<what> <value> is not <expected>"."""
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not {expected}")
    return value


def meter_id(value: object, what: str = "meter") -> str:
    return check(METER, value, what, "a meter id (letters, digits, '.', '_', '-'; at most 64)")


def token(value: object, what: str) -> str:
    return check(TOKEN, value, what, "a token (letters, digits, '.', '_', ':', '-'; at most 64)")


def session_id(value: object, what: str = "session") -> str:
    return check(SESSION_ID, value, what, "a session id")


def money(value: object, what: str = "amount") -> str:
    """An amount of money with two decimals ('100.00'); a Decimal is written that way."""
    if isinstance(value, Decimal):
        value = f"{value:.2f}"
    return check(AMOUNT, value, what, "an amount with two decimals such as '100.00'")


def count(value: object, what: str) -> int:
    """A whole number >= 0, from an int or a string of at most 12 ASCII digits (never a bool)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a whole number >= 0")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        number = int(value)
    else:
        raise ValueError(f"{what} {value!r} is not a whole number >= 0")
    if number < 0:
        raise ValueError(f"{what} {value!r} is not a whole number >= 0")
    return number


def iso_date(value: object, what: str) -> str:
    """A calendar date written YYYY-MM-DD (a `date` is written that way)."""
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError(f"{what} {value!r} is not a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not a date YYYY-MM-DD: {exc}") from exc
    return value


def register(value: object, what: str) -> str:
    """A postage register (ascending or descending): a non-negative decimal."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        value = f"{Decimal(value):.2f}"
    if not isinstance(value, str) or not _REGISTER.match(value):
        raise ValueError(f"{what} {value!r} is not a non-negative decimal such as '1234.56'")
    try:
        Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes it
        raise ValueError(f"{what} {value!r} is not a decimal") from exc
    return value
