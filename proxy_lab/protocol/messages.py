"""Every message of docs/cloud-protocol.md, built and parsed for both sides (device and cloud).

A pure module: no sockets, no asyncio, no state. Builders return the exact bytes to send; parsers
take the bytes received and return plain values, raising `ValueError` whose message says what
was seen and what was expected. Untrusted XML is only ever parsed with defusedxml (no DTDs, no
entities, no external references); `xml.etree.ElementTree` is used only to build.

The raw-TCP line protocols (TeamViewer-like on 5938, mtalk on 5228), the DynGate answers, the
help and origin pages, and the Ed25519 file signatures live here too, so that the device checks
exactly what the cloud produces.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import ParseError

import defusedxml
import defusedxml.ElementTree as SafeET
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "CONTENT_TYPE_XML",
    "DOWNLOAD_FILES",
    "HELP_TITLE",
    "MAX_XML_BYTES",
    "MODELS",
    "MTALK_HELLO",
    "MTALK_OK",
    "OTA_PATH",
    "SIGNATURE_BYTES",
    "TV_PING",
    "TV_PONG",
    "TV_PREFIX",
    "FileEntry",
    "Record",
    "accounting_request",
    "accounting_response",
    "audit_request",
    "audit_response",
    "auth_request",
    "auth_response",
    "download_index",
    "dyngate_in_answer",
    "dyngate_out_answer",
    "file_path",
    "health_data",
    "health_receipt",
    "help_page",
    "host_page",
    "is_help_page",
    "message_root",
    "parse_accounting_request",
    "parse_accounting_response",
    "parse_audit_request",
    "parse_audit_response",
    "parse_auth_request",
    "parse_auth_response",
    "parse_download_index",
    "parse_dyngate_answer",
    "parse_health_data",
    "parse_health_receipt",
    "parse_psd_config",
    "parse_psd_config_request",
    "parse_receipt",
    "parse_receipt_meter",
    "parse_refill_request",
    "parse_refill_response",
    "parse_teamviewer_hello",
    "parse_teamviewer_ok",
    "parse_transaction_upload",
    "psd_config",
    "psd_config_request",
    "refill_request",
    "refill_response",
    "sign_file",
    "signature_path",
    "teamviewer_hello",
    "teamviewer_ok",
    "transaction_receipt",
    "transaction_upload",
    "verify_file",
]

CONTENT_TYPE_XML = "application/xml"
MODELS = ("sendpro-c", "sendpro-plus")
MAX_XML_BYTES = 1024 * 1024
MAX_RECORDS = 10_000

# Files served by the download hosts (pbdlsp1*.pb.com) under /files/<name> and listed by
# dlsdlp1.pb.com's DownloadIndex; the OTA package lives on pb-ota.redbend.com.
DOWNLOAD_FILES = ("rates-gb.bin", "software.bin", "graphics.bin")
OTA_PATH = "/ota/update.bin"
SIGNATURE_BYTES = 64  # a raw Ed25519 signature (RFC 8032 §5.1.6)

HELP_TITLE = "SendPro C Series Help"

# Raw TCP 5938 (TeamViewer-like): every line starts with 0x17 0x24. 0x17 is the first byte of
# TeamViewer's native protocol, which firewalls match on (MikroTik `regexp="^\\x17"`, reference §7).
TV_PREFIX = b"\x17\x24"
TV_PING = TV_PREFIX + b"PING\n"
TV_PONG = TV_PREFIX + b"PONG\n"
MTALK_HELLO = b"MTALK HELLO\n"
MTALK_OK = b"MTALK OK\n"

_METER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_AMOUNT = re.compile(r"^[0-9]{1,9}\.[0-9]{2}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# -- value checks (shared by builders and parsers) ----------------------------------------------
def _check(pattern: re.Pattern[str], value: object, what: str, expected: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not {expected}")
    return value


def _meter(value: object, what: str = "meter") -> str:
    return _check(_METER, value, what, "a meter id (letters, digits, '.', '_', '-'; at most 64)")


def _token(value: object, what: str) -> str:
    return _check(_TOKEN, value, what, "a token (letters, digits, '.', '_', ':', '-'; at most 64)")


def _amount(value: object, what: str = "amount") -> str:
    if isinstance(value, Decimal):
        value = f"{value:.2f}"
    return _check(_AMOUNT, value, what, "an amount with two decimals such as '100.00'")


def _count(value: object, what: str) -> int:
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


def _date(value: object, what: str) -> str:
    if isinstance(value, date):
        return value.isoformat()
    if not isinstance(value, str) or not re.match(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", value):
        raise ValueError(f"{what} {value!r} is not a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{what} {value!r} is not a date YYYY-MM-DD: {exc}") from exc
    return value


def _register(value: object, what: str) -> str:
    """A postage register (ascending or descending): a non-negative decimal."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        value = f"{Decimal(value):.2f}"
    if not isinstance(value, str) or not re.match(r"^[0-9]{1,12}(\.[0-9]{1,4})?$", value):
        raise ValueError(f"{what} {value!r} is not a non-negative decimal such as '1234.56'")
    try:
        Decimal(value)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes it
        raise ValueError(f"{what} {value!r} is not a decimal") from exc
    return value


# -- building and parsing XML ---------------------------------------------------------------------
def _build(
    tag: str, attrs: Mapping[str, str], children: Iterable[tuple[str, Mapping[str, str]]] = ()
) -> bytes:
    root = ET.Element(tag, dict(attrs))
    for child_tag, child_attrs in children:
        ET.SubElement(root, child_tag, dict(child_attrs))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def message_root(body: bytes) -> ET.Element:
    """Parse untrusted XML with defusedxml; ValueError names why it was refused."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ValueError(f"XML body must be bytes, got {type(body).__name__}")
    body = bytes(body)
    if not body.strip():
        raise ValueError("empty body: expected an XML document")
    if len(body) > MAX_XML_BYTES:
        raise ValueError(f"XML body of {len(body)} bytes is larger than the {MAX_XML_BYTES} allowed")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden as exc:
        raise ValueError("XML with a DOCTYPE (DTD) is refused") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise ValueError(f"XML entity declaration {exc.name!r} is refused") from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ValueError(f"XML external reference {exc.sysid!r} is refused") from exc
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"XML refused: {exc}") from exc
    except ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from exc
    except (UnicodeError, LookupError) as exc:
        raise ValueError(f"XML has a bad encoding: {exc}") from exc
    if not isinstance(root, ET.Element):  # pragma: no cover - defusedxml returns an Element
        raise ValueError("XML document has no root element")
    return root


def _expect_root(body: bytes, tag: str, *, children: str | None = None) -> ET.Element:
    root = message_root(body)
    if root.tag != tag:
        raise ValueError(f"root element is <{root.tag}>, expected <{tag}>")
    for child in root:
        if children is None:
            raise ValueError(f"<{tag}> has a child <{child.tag}>; it takes no child elements")
        if child.tag != children:
            raise ValueError(f"<{tag}> has a child <{child.tag}>; expected only <{children}> children")
    if root.text and root.text.strip():
        raise ValueError(f"<{tag}> has text content {root.text.strip()[:40]!r}; expected none")
    return root


def _attr(el: ET.Element, name: str) -> str:
    value = el.get(name)
    if value is None:
        raise ValueError(f"<{el.tag}> lacks the attribute {name!r}")
    return value


def _status_ok(el: ET.Element) -> str:
    status = _attr(el, "status")
    return _token(status, f"<{el.tag}> status")


# -- authenticate (distservp1.pb.com) -------------------------------------------------------------
def auth_request(meter: str, model: str) -> bytes:
    """`<AuthRequest meter="M" model="sendpro-c"/>`."""
    if model not in MODELS:
        raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")
    return _build("AuthRequest", {"meter": _meter(meter), "model": model})


def parse_auth_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "model"}."""
    el = _expect_root(body, "AuthRequest")
    model = _attr(el, "model")
    if model not in MODELS:
        raise ValueError(f"<AuthRequest> model {model!r} is not one of {', '.join(MODELS)}")
    return {"meter": _meter(_attr(el, "meter"), "<AuthRequest> meter"), "model": model}


def auth_response(meter: str, session: str, status: str = "ok") -> bytes:
    """`<AuthResponse status="ok" meter="M" session="S"/>`."""
    session = _check(_SESSION_ID, session, "session", "a session id")
    return _build(
        "AuthResponse", {"status": _token(status, "status"), "meter": _meter(meter), "session": session}
    )


def parse_auth_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter", "session"}; the caller checks `status == "ok"`."""
    el = _expect_root(body, "AuthResponse")
    return {
        "status": _status_ok(el),
        "meter": _meter(_attr(el, "meter"), "<AuthResponse> meter"),
        "session": _check(_SESSION_ID, _attr(el, "session"), "<AuthResponse> session", "a session id"),
    }


# -- funds: refill, audit, PSD configuration -----------------------------------------------------
def refill_request(meter: str, amount: str | Decimal) -> bytes:
    """`<RefillRequest meter="M" amount="100.00"/>`."""
    return _build("RefillRequest", {"meter": _meter(meter), "amount": _amount(amount)})


def parse_refill_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "amount"} (amount as sent, two decimals)."""
    el = _expect_root(body, "RefillRequest")
    return {
        "meter": _meter(_attr(el, "meter"), "<RefillRequest> meter"),
        "amount": _amount(_attr(el, "amount"), "<RefillRequest> amount"),
    }


def refill_response(meter: str, amount: str | Decimal, status: str = "ok") -> bytes:
    """`<RefillResponse status="ok" meter="M" amount="100.00"/>`: the amount is echoed."""
    return _build(
        "RefillResponse",
        {"status": _token(status, "status"), "meter": _meter(meter), "amount": _amount(amount)},
    )


def parse_refill_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter", "amount"}; the device checks the amount it asked for is echoed."""
    el = _expect_root(body, "RefillResponse")
    return {
        "status": _status_ok(el),
        "meter": _meter(_attr(el, "meter"), "<RefillResponse> meter"),
        "amount": _amount(_attr(el, "amount"), "<RefillResponse> amount"),
    }


def audit_request(meter: str, ascending: str | Decimal, descending: str | Decimal) -> bytes:
    """`<AuditRequest meter="M" ascending="A" descending="D"/>` (the postage registers)."""
    return _build(
        "AuditRequest",
        {
            "meter": _meter(meter),
            "ascending": _register(ascending, "ascending"),
            "descending": _register(descending, "descending"),
        },
    )


def parse_audit_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "ascending", "descending"}."""
    el = _expect_root(body, "AuditRequest")
    return {
        "meter": _meter(_attr(el, "meter"), "<AuditRequest> meter"),
        "ascending": _register(_attr(el, "ascending"), "<AuditRequest> ascending"),
        "descending": _register(_attr(el, "descending"), "<AuditRequest> descending"),
    }


def audit_response(meter: str, status: str = "ok") -> bytes:
    """`<AuditResponse status="ok" meter="M"/>`."""
    return _build("AuditResponse", {"status": _token(status, "status"), "meter": _meter(meter)})


def parse_audit_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    el = _expect_root(body, "AuditResponse")
    return {"status": _status_ok(el), "meter": _meter(_attr(el, "meter"), "<AuditResponse> meter")}


def psd_config_request(meter: str) -> bytes:
    """`<PsdConfigRequest meter="M"/>`."""
    return _build("PsdConfigRequest", {"meter": _meter(meter)})


def parse_psd_config_request(body: bytes) -> dict[str, str]:
    """-> {"meter"}."""
    el = _expect_root(body, "PsdConfigRequest")
    return {"meter": _meter(_attr(el, "meter"), "<PsdConfigRequest> meter")}


def psd_config(meter: str, region: str = "GB", **settings: str) -> bytes:
    """`<PsdConfig meter="M" region="GB" .../>`: further settings become attributes."""
    attrs = {"meter": _meter(meter), "region": _token(region, "region")}
    for key, value in settings.items():
        attrs[_token(key, "setting name")] = _token(value, f"setting {key}")
    return _build("PsdConfig", attrs)


def parse_psd_config(body: bytes) -> dict[str, str]:
    """-> every attribute of <PsdConfig>; `meter` and `region` are required."""
    el = _expect_root(body, "PsdConfig")
    _meter(_attr(el, "meter"), "<PsdConfig> meter")
    _token(_attr(el, "region"), "<PsdConfig> region")
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
        _token(self.id, "record id")
        _token(self.mail_class, f"record {self.id} class")
        _count(self.weight_g, f"record {self.id} weight_g")
        _amount(self.fee, f"record {self.id} fee")
        _date(self.date, f"record {self.id} date")

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
    return _build("TransactionUpload", {"meter": _meter(meter)}, (("Record", r.attrs()) for r in recs))


def parse_transaction_upload(body: bytes) -> tuple[str, list[Record]]:
    """-> (meter, records in the order sent)."""
    el = _expect_root(body, "TransactionUpload", children="Record")
    meter = _meter(_attr(el, "meter"), "<TransactionUpload> meter")
    if len(el) > MAX_RECORDS:
        raise ValueError(f"<TransactionUpload> holds {len(el)} records; at most {MAX_RECORDS} are accepted")
    records: list[Record] = []
    for i, child in enumerate(el):
        if len(child):
            raise ValueError(f"<Record> #{i} has child elements; expected none")
        try:
            records.append(
                Record(
                    id=_attr(child, "id"),
                    mail_class=_attr(child, "class"),
                    weight_g=_count(_attr(child, "weight_g"), "weight_g"),
                    fee=_attr(child, "fee"),
                    date=_attr(child, "date"),
                )
            )
        except ValueError as exc:
            raise ValueError(f"<Record> #{i}: {exc}") from exc
    return meter, records


def transaction_receipt(meter: str, ids: Iterable[str]) -> bytes:
    """`<TransactionReceipt meter="M"><Received id="ID"/>...</TransactionReceipt>`."""
    return _build(
        "TransactionReceipt",
        {"meter": _meter(meter)},
        (("Received", {"id": _token(i, "received id")}) for i in ids),
    )


def parse_receipt(body: bytes) -> list[str]:
    """The ids named by `Received` elements, in order: the only ids a device may delete."""
    el = _expect_root(body, "TransactionReceipt", children="Received")
    _meter(_attr(el, "meter"), "<TransactionReceipt> meter")
    return [_token(_attr(child, "id"), "<Received> id") for child in el]


def parse_receipt_meter(body: bytes) -> str:
    """The meter a receipt is addressed to."""
    el = _expect_root(body, "TransactionReceipt", children="Received")
    return _meter(_attr(el, "meter"), "<TransactionReceipt> meter")


# -- downloads (dlsdlp1.pb.com index, pbdlsp1*.pb.com files, pb-ota.redbend.com) -----------------
@dataclass(frozen=True)
class FileEntry:
    """One file of the DownloadIndex."""

    name: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        _check(_FILE_NAME, self.name, "file name", "a file name")
        _count(self.size, f"file {self.name} size")
        _check(_SHA256, self.sha256, f"file {self.name} sha256", "64 lowercase hex digits")

    @property
    def path(self) -> str:
        return file_path(self.name)


def file_path(name: str) -> str:
    """Where a download host serves the file `name`: `/files/<name>`."""
    return "/files/" + _check(_FILE_NAME, name, "file name", "a file name")


def signature_path(path: str) -> str:
    """The detached signature of the file at `path`: `<path>.sig`."""
    return path + ".sig"


def download_index(entries: Iterable[FileEntry]) -> bytes:
    """`<DownloadIndex><File name=".." size="N" sha256="H"/>...</DownloadIndex>`."""
    return _build(
        "DownloadIndex",
        {},
        (("File", {"name": e.name, "size": str(e.size), "sha256": e.sha256}) for e in entries),
    )


def parse_download_index(body: bytes) -> list[FileEntry]:
    """-> the files listed, in order."""
    el = _expect_root(body, "DownloadIndex", children="File")
    entries: list[FileEntry] = []
    for i, child in enumerate(el):
        try:
            entries.append(
                FileEntry(
                    _attr(child, "name"), _count(_attr(child, "size"), "size"), _attr(child, "sha256").lower()
                )
            )
        except ValueError as exc:
            raise ValueError(f"<File> #{i}: {exc}") from exc
    return entries


def sign_file(key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The detached raw 64-byte Ed25519 signature of `data`."""
    return key.sign(bytes(data))


def verify_file(public_key: Ed25519PublicKey, data: bytes, signature: bytes) -> None:
    """Raise ValueError unless `signature` is the lab key's Ed25519 signature of `data`."""
    if len(signature) != SIGNATURE_BYTES:
        raise ValueError(f"signature is {len(signature)} bytes; an Ed25519 signature is {SIGNATURE_BYTES}")
    try:
        public_key.verify(bytes(signature), bytes(data))
    except InvalidSignature as exc:
        raise ValueError(f"Ed25519 signature does not verify over the {len(data)} bytes received") from exc


# -- accounting (ms1app.pb.com) and health data (s3.amazonaws.com) -------------------------------
def accounting_request(meter: str, report: str = "summary") -> bytes:
    """`<AccountingRequest meter="M" report="summary"/>`."""
    return _build("AccountingRequest", {"meter": _meter(meter), "report": _token(report, "report")})


def parse_accounting_request(body: bytes) -> dict[str, str]:
    """-> {"meter", "report"}."""
    el = _expect_root(body, "AccountingRequest")
    return {
        "meter": _meter(_attr(el, "meter"), "<AccountingRequest> meter"),
        "report": _token(_attr(el, "report"), "<AccountingRequest> report"),
    }


def accounting_response(meter: str, status: str = "ok") -> bytes:
    """`<AccountingResponse status="ok" meter="M"/>`."""
    return _build("AccountingResponse", {"status": _token(status, "status"), "meter": _meter(meter)})


def parse_accounting_response(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    el = _expect_root(body, "AccountingResponse")
    return {"status": _status_ok(el), "meter": _meter(_attr(el, "meter"), "<AccountingResponse> meter")}


def health_data(meter: str, software: str = "1.0", errors: int = 0) -> bytes:
    """`<HealthData meter="M" software="1.0" errors="0"/>`."""
    return _build(
        "HealthData",
        {
            "meter": _meter(meter),
            "software": _token(software, "software"),
            "errors": str(_count(errors, "errors")),
        },
    )


def parse_health_data(body: bytes) -> dict[str, str]:
    """-> {"meter", "software", "errors"} (errors as a decimal string)."""
    el = _expect_root(body, "HealthData")
    return {
        "meter": _meter(_attr(el, "meter"), "<HealthData> meter"),
        "software": _token(_attr(el, "software"), "<HealthData> software"),
        "errors": str(_count(_attr(el, "errors"), "<HealthData> errors")),
    }


def health_receipt(meter: str, status: str = "ok") -> bytes:
    """`<HealthReceipt status="ok" meter="M"/>`."""
    return _build("HealthReceipt", {"status": _token(status, "status"), "meter": _meter(meter)})


def parse_health_receipt(body: bytes) -> dict[str, str]:
    """-> {"status", "meter"}."""
    el = _expect_root(body, "HealthReceipt")
    return {"status": _status_ok(el), "meter": _meter(_attr(el, "meter"), "<HealthReceipt> meter")}


# -- pages: online help, origin pages ------------------------------------------------------------
def help_page() -> bytes:
    """The online-help page; its marker is `<title>SendPro C Series Help</title>`."""
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f"<title>{HELP_TITLE}</title></head>"
        f"<body><h1>{HELP_TITLE}</h1><p>proxy-lab simulated online help (SV63242-gb).</p></body></html>\n"
    ).encode()


def is_help_page(body: bytes) -> bool:
    """True when `body` carries the help page's title marker (a block page does not)."""
    return f"<title>{HELP_TITLE}</title>".encode() in body


def host_page(host: str) -> bytes:
    """An origin's page that names the host it was served for."""
    name = html.escape(host)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{name}</title></head>'
        f"<body><h1>{name}</h1><p>proxy-lab simulated origin for {name}.</p></body></html>\n"
    ).encode()


# -- DynGate (TeamViewer's HTTP fallback) --------------------------------------------------------
def dyngate_in_answer(s: str) -> bytes:
    """Answer to `GET /din.aspx?s=..&id=0&client=DynGate`: `DYNGATE OK s=<s>`."""
    return f"DYNGATE OK s={_token(s, 's')}".encode()


def dyngate_out_answer(s: str, n: int) -> bytes:
    """Answer to `POST /dout.aspx?s=..&client=DynGate` with n body bytes: `DYNGATE OK s=<s> bytes=<n>`."""
    return f"DYNGATE OK s={_token(s, 's')} bytes={_count(n, 'bytes')}".encode()


def parse_dyngate_answer(body: bytes) -> tuple[str, int | None]:
    """-> (s, bytes) for a dout answer, (s, None) for a din answer."""
    m = re.fullmatch(rb"DYNGATE OK s=([A-Za-z0-9._:-]{1,64})(?: bytes=([0-9]{1,12}))?\r?\n?", bytes(body))
    if not m:
        raise ValueError(
            f"not a DynGate answer: {bytes(body)[:60]!r}; expected b'DYNGATE OK s=<s>[ bytes=<n>]'"
        )
    return m.group(1).decode(), int(m.group(2)) if m.group(2) is not None else None


# -- raw TCP 5938 (TeamViewer-like) --------------------------------------------------------------
def teamviewer_hello(meter: str) -> bytes:
    """The client's first line: `\\x17\\x24HELLO <meter>\\n`."""
    return TV_PREFIX + b"HELLO " + _meter(meter).encode() + b"\n"


def parse_teamviewer_hello(line: bytes) -> str:
    """-> the meter id of a HELLO line (with its newline)."""
    m = re.fullmatch(rb"\x17\x24HELLO ([A-Za-z0-9._-]{1,64})\n", bytes(line))
    if not m:
        raise ValueError(
            f"not a TeamViewer HELLO line: {bytes(line)[:60]!r}; expected b'\\x17\\x24HELLO <meter>\\n'"
        )
    return _meter(m.group(1).decode())


def teamviewer_ok(session: str) -> bytes:
    """The server's answer to HELLO: `\\x17\\x24OK <session>\\n`."""
    return TV_PREFIX + b"OK " + _check(_SESSION_ID, session, "session", "a session id").encode() + b"\n"


def parse_teamviewer_ok(line: bytes) -> str:
    """-> the session id of an OK line (with its newline)."""
    m = re.fullmatch(rb"\x17\x24OK ([A-Za-z0-9._-]{1,64})\n", bytes(line))
    if not m:
        raise ValueError(
            f"not a TeamViewer OK line: {bytes(line)[:60]!r}; expected b'\\x17\\x24OK <session>\\n'"
        )
    return m.group(1).decode()
