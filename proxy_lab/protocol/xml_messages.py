"""The XML messages of the PB services: authenticate, funds (refill, audit, PSD configuration),
transaction upload and receipt, accounting, health data (docs/cloud-protocol.md's table).

Builders return the exact bytes to send; parsers take the bytes received and return plain values,
raising `ValueError` whose message says what was seen and what was expected. A transaction record
is the frozen `Record`, shared with the device's journal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from proxy_lab.protocol.fields import count, iso_date, meter_id, money, register, session_id, token
from proxy_lab.protocol.xmldoc import attr, build, expect_root

MODELS = ("sendpro-c", "sendpro-plus")
MAX_RECORDS = 10_000


Check = Callable[[object, str], str]


def _answer(tag: str, meter: str, status: str, **more: str) -> bytes:
    """`<Tag status="ok" meter="M" more.../>`: the answers of the PB services."""
    return build(tag, {"status": token(status, "status"), "meter": meter_id(meter), **more})


def _parse_meter_message(body: bytes, tag: str, **more: Check) -> dict[str, str]:
    """-> {"meter", more...} of a `<Tag meter="M" .../>` message, each further attribute checked by its check."""
    el = expect_root(body, tag)
    got = {"meter": meter_id(attr(el, "meter"), f"<{tag}> meter")}
    for name, check in more.items():
        got[name] = check(attr(el, name), f"<{tag}> {name}")
    return got


def _parse_answer(body: bytes, tag: str, **more: Check) -> dict[str, str]:
    """-> {"status", "meter", more...} of a `<Tag status=".." meter="M" .../>` answer."""
    return _parse_meter_message(body, tag, status=token, **more)


def _errors(value: object, what: str) -> str:
    return str(count(value, what))


# -- authenticate (distservp1.pb.com) -------------------------------------------------------------
def auth_request(meter: str, model: str) -> bytes:
    """`<AuthRequest meter="M" model="sendpro-c"/>`."""
    if model not in MODELS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    return build("AuthRequest", {"meter": meter_id(meter), "model": model})


def parse_auth_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "model"}."""
    el = expect_root(body, "AuthRequest")
    model = attr(el, "model")
    if model not in MODELS:
        raise ValueError(f"<AuthRequest> model {model!r} is not one of {', '.join(MODELS)}")
    return {"meter": meter_id(attr(el, "meter"), "<AuthRequest> meter"), "model": model}


def auth_response(meter: str, session: str, status: str = "ok") -> bytes:
    """`<AuthResponse status="ok" meter="M" session="S"/>`."""
    return _answer("AuthResponse", meter, status, session=session_id(session))


def parse_auth_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter", "session"}; the caller checks `status == "ok"`."""
    return _parse_answer(body, "AuthResponse", session=session_id)


# -- funds: refill, audit, PSD configuration -----------------------------------------------------
def refill_request(meter: str, amount: str | Decimal) -> bytes:
    """`<RefillRequest meter="M" amount="100.00"/>`."""
    return build("RefillRequest", {"meter": meter_id(meter), "amount": money(amount)})


def parse_refill_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "amount"} (amount as sent, two decimals)."""
    return _parse_meter_message(body, "RefillRequest", amount=money)


def refill_response(meter: str, amount: str | Decimal, status: str = "ok") -> bytes:
    """`<RefillResponse status="ok" meter="M" amount="100.00"/>`: the amount is echoed."""
    return _answer("RefillResponse", meter, status, amount=money(amount))


def parse_refill_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter", "amount"}; the device checks the amount it asked for is echoed."""
    return _parse_answer(body, "RefillResponse", amount=money)


def audit_request(meter: str, ascending: str | Decimal, descending: str | Decimal) -> bytes:
    """`<AuditRequest meter="M" ascending="A" descending="D"/>` (the postage registers)."""
    return build(
        "AuditRequest",
        {
            "meter": meter_id(meter),
            "ascending": register(ascending, "ascending"),
            "descending": register(descending, "descending"),
        },
    )


def parse_audit_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "ascending", "descending"}."""
    return _parse_meter_message(body, "AuditRequest", ascending=register, descending=register)


def audit_response(meter: str, status: str = "ok") -> bytes:
    """`<AuditResponse status="ok" meter="M"/>`."""
    return _answer("AuditResponse", meter, status)


def parse_audit_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    return _parse_answer(body, "AuditResponse")


def psd_config_request(meter: str) -> bytes:
    """`<PsdConfigRequest meter="M"/>`."""
    return build("PsdConfigRequest", {"meter": meter_id(meter)})


def parse_psd_config_request(body: bytes) -> dict[str, str]:
    """-> {"meter"}."""
    return _parse_meter_message(body, "PsdConfigRequest")


def psd_config(meter: str, region: str = "GB", **settings: str) -> bytes:
    """`<PsdConfig meter="M" region="GB" .../>`: further settings become attributes."""
    attrs = {"meter": meter_id(meter), "region": token(region, "region")}
    for key, value in settings.items():
        attrs[token(key, "setting name")] = token(value, f"setting {key}")
    return build("PsdConfig", attrs)


def parse_psd_config(body: bytes) -> dict[str, str]:
    """-> every attribute of <PsdConfig>; `meter` and `region` are required."""
    el = expect_root(body, "PsdConfig")
    meter_id(attr(el, "meter"), "<PsdConfig> meter")
    token(attr(el, "region"), "<PsdConfig> region")
    return dict(el.attrib)


# -- transactions (cometservp1.pb.com) -----------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One transaction record of the meter's journal: a mail piece printed."""

    id: str
    mail_class: str = "1st"
    weight_g: int = 100
    fee: str = "0.00"
    date: str = "2020-08-19"

    def __post_init__(self) -> None:
        token(self.id, "record id")
        token(self.mail_class, f"record {self.id} class")
        count(self.weight_g, f"record {self.id} weight_g")
        money(self.fee, f"record {self.id} fee")
        iso_date(self.date, f"record {self.id} date")

    def attrs(self) -> dict[str, str]:
        return {
            "id": self.id,
            "class": self.mail_class,
            "weight_g": str(self.weight_g),
            "fee": self.fee,
            "date": self.date,
        }


def _as_record(item: Record | str | Mapping[str, object]) -> Record:
    if isinstance(item, Record):
        return item
    if isinstance(item, str):
        return Record(item)
    if isinstance(item, Mapping):
        fields = dict(item)
        if "class" in fields:
            fields["mail_class"] = fields.pop("class")
        try:
            return Record(**fields)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ValueError(f"record {item!r}: {exc}") from exc
    raise ValueError(f"record {item!r} is not a Record, an id or a mapping")


def transaction_upload(meter: str, records: Iterable[Record | str | Mapping[str, object]]) -> bytes:
    """`<TransactionUpload meter="M"><Record id=.. class=.. weight_g=.. fee=.. date=../>...`.

    `records` may be Record objects, bare ids (other fields take defaults) or mappings of
    Record's fields (`class` is accepted for `mail_class`). Zero records is a valid upload.
    """
    recs = [_as_record(r) for r in records]
    return build("TransactionUpload", {"meter": meter_id(meter)}, (("Record", r.attrs()) for r in recs))


def parse_transaction_upload(body: bytes) -> tuple[str, list[Record]]:
    """-> (meter, records in the order sent)."""
    el = expect_root(body, "TransactionUpload", children="Record")
    meter = meter_id(attr(el, "meter"), "<TransactionUpload> meter")
    if len(el) > MAX_RECORDS:
        raise ValueError(f"<TransactionUpload> holds {len(el)} records; at most {MAX_RECORDS} are accepted")
    records: list[Record] = []
    for i, child in enumerate(el):
        if len(child):
            raise ValueError(f"<Record> #{i} has child elements; expected none")
        try:
            records.append(
                Record(
                    id=attr(child, "id"),
                    mail_class=attr(child, "class"),
                    weight_g=count(attr(child, "weight_g"), "weight_g"),
                    fee=attr(child, "fee"),
                    date=attr(child, "date"),
                )
            )
        except ValueError as exc:
            raise ValueError(f"<Record> #{i}: {exc}") from exc
    return meter, records


def transaction_receipt(meter: str, ids: Iterable[str]) -> bytes:
    """`<TransactionReceipt meter="M"><Received id="ID"/>...</TransactionReceipt>`."""
    return build(
        "TransactionReceipt",
        {"meter": meter_id(meter)},
        (("Received", {"id": token(i, "received id")}) for i in ids),
    )


def parse_receipt(body: bytes) -> list[str]:
    """The ids named by `Received` elements, in order: the only ids a device may delete."""
    el = expect_root(body, "TransactionReceipt", children="Received")
    meter_id(attr(el, "meter"), "<TransactionReceipt> meter")
    return [token(attr(child, "id"), "<Received> id") for child in el]


def parse_receipt_meter(body: bytes) -> str:
    """The meter a receipt is addressed to."""
    el = expect_root(body, "TransactionReceipt", children="Received")
    return meter_id(attr(el, "meter"), "<TransactionReceipt> meter")


# -- accounting (ms1app.pb.com) and health data (s3.amazonaws.com) -------------------------------
def accounting_request(meter: str, report: str = "summary") -> bytes:
    """`<AccountingRequest meter="M" report="summary"/>`."""
    return build("AccountingRequest", {"meter": meter_id(meter), "report": token(report, "report")})


def parse_accounting_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "report"}."""
    return _parse_meter_message(body, "AccountingRequest", report=token)


def accounting_response(meter: str, status: str = "ok") -> bytes:
    """`<AccountingResponse status="ok" meter="M"/>`."""
    return _answer("AccountingResponse", meter, status)


def parse_accounting_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    return _parse_answer(body, "AccountingResponse")


def health_data(meter: str, software: str = "1.0", errors: int = 0) -> bytes:
    """`<HealthData meter="M" software="1.0" errors="0"/>`."""
    return build(
        "HealthData",
        {
            "meter": meter_id(meter),
            "software": token(software, "software"),
            "errors": str(count(errors, "errors")),
        },
    )


def parse_health_data(body: bytes) -> dict[str, str]:
    """-> {"meter", "software", "errors"} (errors as a decimal string)."""
    return _parse_meter_message(body, "HealthData", software=token, errors=_errors)


def health_receipt(meter: str, status: str = "ok") -> bytes:
    """`<HealthReceipt status="ok" meter="M"/>`."""
    return _answer("HealthReceipt", meter, status)


def parse_health_receipt(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    return _parse_answer(body, "HealthReceipt")
