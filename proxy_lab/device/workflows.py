"""The exchanges: what the device does inside the tunnel at each catalog endpoint.

Owns one coroutine per catalog `exchange` name, exactly per docs/cloud-protocol.md, built and
checked with `proxy_lab.protocol.messages` (the same module the cloud uses). Each HTTP exchange is one
request per connection (`Connection: close`); an exchange needing two requests (a signed download
and its `.sig`) opens a second tunnel. Every exchange returns a `Worked` observation or ends the
probe with ProbeFailed: origin 4xx/5xx is refused, a failed signature or semantic check tampered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from proxy_lab.catalog import Endpoint
from proxy_lab.device.classify import CheckFailed, OriginAnswer, ProbeFailed, Worked, classify, page_title
from proxy_lab.device.client import HttpAnswer, http_request
from proxy_lab.device.holds import hold_quiet
from proxy_lab.device.journal import Journal
from proxy_lab.device.settings import DeviceSettings
from proxy_lab.device.transcript import Transcript
from proxy_lab.device.wire import Stream
from proxy_lab.errors import RemoteProtocolError
from proxy_lab.outcomes import Evidence
from proxy_lab.protocol import messages as msg
from proxy_lab.response import NotHttpError, parse_response

Opener = Callable[[], Awaitable[Stream]]

REFILL_AMOUNT = "100.00"
AUDIT_REGISTERS = ("1234.56", "8765.44")  # ascending, descending
DOWNLOAD_FILE = "rates-gb.bin"
DYNGATE_OUT_BYTES = bytes(range(64))  # "a small binary body"
MAX_LINE = 256


@dataclass
class Exchange:
    """What one exchange needs: the endpoint, the settings, and where to record what happened."""

    endpoint: Endpoint
    settings: DeviceSettings
    journal: Journal
    public_key: Ed25519PublicKey
    evidence: Evidence
    transcript: Transcript
    open: Opener

    @property
    def origin(self) -> str:
        """Who answered, as messages name it: the URL, and the proxy it came through."""
        proxy = self.settings.proxy
        return self.endpoint.url + (f" (through proxy {proxy.address})" if proxy else "")

    def fail(self, what: str, seen: str, expected: str) -> ProbeFailed:
        self.transcript.note(f"check failed: {what}: {seen}")
        return ProbeFailed(classify(CheckFailed(self.origin, what, seen, expected)))


# -- helpers ----------------------------------------------------------------------------------------


async def _http(
    x: Exchange,
    method: str,
    target: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    expected: str,
) -> HttpAnswer:
    stream = await x.open()
    try:
        answer = await http_request(
            stream,
            x.transcript,
            method,
            target,
            host=x.endpoint.host,
            port=x.endpoint.port,
            tls=x.endpoint.transport == "tls",
            body=body,
            content_type=content_type,
            expected=expected,
        )
    finally:
        stream.close()
    x.evidence.http_status = answer.status
    return answer


def _refuse_errors(x: Exchange, answer: HttpAnswer, request: str, expected: str) -> None:
    """Origin (or web filter) 4xx/5xx: the request was refused (a 403 block page on port 80)."""
    r = answer.response
    if r.status >= 400:
        raise ProbeFailed(
            classify(
                OriginAnswer(x.origin, request, r.status, r.reason, r.headers, answer.body[:4096], expected)
            )
        )


def _require_200(x: Exchange, answer: HttpAnswer, request: str, expected: str) -> None:
    _refuse_errors(x, answer, request, expected)
    r = answer.response
    if r.status != 200:
        # A 3xx (to a portal or a block page) or another 2xx where the protocol says 200.
        raise ProbeFailed(
            classify(
                OriginAnswer(x.origin, request, r.status, r.reason, r.headers, answer.body[:4096], expected)
            )
        )


def _check[T](x: Exchange, parse: Callable[[bytes], T], body: bytes, what: str, expected: str) -> T:
    try:
        return parse(body)
    except ValueError as exc:
        title = page_title(body)
        seen = f"{exc}" + (f" (an HTML page titled {title!r})" if title else "")
        raise x.fail(what, seen, expected) from exc


async def _post_xml(
    x: Exchange, target: str, body: bytes, parse: Callable[[bytes], dict[str, str]], root: str
) -> dict[str, str]:
    expected = f'200 with <{root} status="ok">'
    answer = await _http(x, "POST", target, body=body, content_type=msg.CONTENT_TYPE_XML, expected=expected)
    _require_200(x, answer, f"POST {target}", expected)
    got = _check(x, parse, answer.body, f"the <{root}> answer", expected)
    if "status" in got and got["status"] != "ok":
        raise x.fail(f"the <{root}> answer", f'status="{got["status"]}"', 'status="ok"')
    if "meter" in got and got["meter"] != x.settings.meter_id:
        raise x.fail(f"the <{root}> answer", f'meter="{got["meter"]}"', f'meter="{x.settings.meter_id}"')
    return got


# -- the exchanges ------------------------------------------------------------------------------------


async def authenticate(x: Exchange) -> Worked:
    s = x.settings
    got = await _post_xml(
        x, x.endpoint.path, msg.auth_request(s.meter_id, s.model), msg.parse_auth_response, "AuthResponse"
    )
    return Worked(f"authenticated {s.meter_id} (session {got['session']})")


async def refill(x: Exchange) -> Worked:
    got = await _post_xml(
        x,
        x.endpoint.path,
        msg.refill_request(x.settings.meter_id, REFILL_AMOUNT),
        msg.parse_refill_response,
        "RefillResponse",
    )
    if got["amount"] != REFILL_AMOUNT:
        raise x.fail(
            "the <RefillResponse> answer", f'amount="{got["amount"]}"', f'amount="{REFILL_AMOUNT}" echoed'
        )
    return Worked(f"refill of {REFILL_AMOUNT} confirmed")


async def audit(x: Exchange) -> Worked:
    asc, desc = AUDIT_REGISTERS
    await _post_xml(
        x,
        x.endpoint.path,
        msg.audit_request(x.settings.meter_id, asc, desc),
        msg.parse_audit_response,
        "AuditResponse",
    )
    return Worked("PSD audit accepted")


async def psd_config(x: Exchange) -> Worked:
    got = await _post_xml(
        x, x.endpoint.path, msg.psd_config_request(x.settings.meter_id), msg.parse_psd_config, "PsdConfig"
    )
    return Worked(f"PSD configuration received (region {got.get('region', '?')})")


async def accounting(x: Exchange) -> Worked:
    await _post_xml(
        x,
        x.endpoint.path,
        msg.accounting_request(x.settings.meter_id),
        msg.parse_accounting_response,
        "AccountingResponse",
    )
    return Worked("accounting report answered")


async def health_upload(x: Exchange) -> Worked:
    await _post_xml(
        x, x.endpoint.path, msg.health_data(x.settings.meter_id), msg.parse_health_receipt, "HealthReceipt"
    )
    return Worked("health data uploaded and acknowledged")


async def transactions(x: Exchange) -> Worked:
    """Upload every pending record; delete exactly the ids the receipt names, and only those.

    With an empty journal the meter first records one mail piece, so the receipt check has an id to
    name. No receipt (EOF, reset, timeout) deletes nothing: the records go with the next upload."""
    journal, meter = x.journal, x.settings.meter_id
    if journal.count() == 0:
        journal.add()
        x.transcript.note("journal was empty: recorded one mail piece to upload")
    pending = journal.pending()
    sent = [r.id for r in pending]
    x.transcript.note(f"journal: uploading {len(sent)} pending record(s)")
    expected = "200 with a <TransactionReceipt> naming every record sent"
    target = x.endpoint.path
    answer = await _http(
        x,
        "POST",
        target,
        body=msg.transaction_upload(meter, pending),
        content_type=msg.CONTENT_TYPE_XML,
        expected=expected,
    )
    _require_200(x, answer, f"POST {target}", expected)
    named = _check(x, msg.parse_receipt, answer.body, "the <TransactionReceipt>", expected)
    receipt_meter = msg.parse_receipt_meter(answer.body)
    if receipt_meter != meter:
        raise x.fail("the <TransactionReceipt>", f'meter="{receipt_meter}"', f'meter="{meter}"')
    ours = set(sent)
    acknowledged = [i for i in dict.fromkeys(named) if i in ours]
    deleted = journal.acknowledge(acknowledged)
    left = journal.count()
    x.transcript.note(
        f"journal: receipt named {len(acknowledged)} of {len(sent)}; deleted {deleted}, {left} left"
    )
    strangers = [i for i in named if i not in ours]
    if strangers:
        x.transcript.note(f"receipt also named {len(strangers)} id(s) never sent; ignored")
    missing = [i for i in sent if i not in set(acknowledged)]
    if missing:
        raise x.fail(
            "the <TransactionReceipt>",
            f"{len(acknowledged)} of {len(sent)} records named ({len(missing)} stay in the journal)",
            "every record sent named",
        )
    return Worked(
        f"uploaded {len(sent)} transaction record(s); the receipt named each; deleted from the journal"
    )


async def download_index(x: Exchange) -> Worked:
    expected = "200 with a <DownloadIndex>"
    answer = await _http(x, "GET", x.endpoint.path, expected=expected)
    _require_200(x, answer, f"GET {x.endpoint.path}", expected)
    files = _check(x, msg.parse_download_index, answer.body, "the <DownloadIndex>", expected)
    return Worked(f"download index lists {len(files)} file(s)")


async def _signed_download(x: Exchange, path: str) -> Worked:
    """GET the file (throughput measured), GET its `.sig`, verify the Ed25519 signature before use."""
    expected = "200 with the file's bytes"
    answer = await _http(x, "GET", path, expected=expected)
    _require_200(x, answer, f"GET {path}", expected)
    kbps = answer.kbps
    x.evidence.kbps = kbps
    x.transcript.note(
        f"downloaded {len(answer.body)} bytes in {answer.elapsed_s * 1000:.0f} ms: {kbps:.0f} kbit/s"
    )
    sig_path = msg.signature_path(path)
    sig_expected = f"200 with the {msg.SIGNATURE_BYTES}-byte Ed25519 signature"
    sig = await _http(x, "GET", sig_path, expected=sig_expected)
    _require_200(x, sig, f"GET {sig_path}", sig_expected)
    # The guide: "Incoming data and files are signed and verified prior to use."
    try:
        msg.verify_file(x.public_key, answer.body, sig.body)
    except ValueError as exc:
        raise x.fail(
            f"the Ed25519 signature of {path}", str(exc), "a signature by the PB signing key"
        ) from exc
    x.transcript.note(f"signature of {path} verified")
    return Worked(
        f"downloaded {path} ({len(answer.body)} bytes, signature verified)",
        kbps=kbps,
        min_kbps=x.settings.min_kbps,
    )


async def download(x: Exchange) -> Worked:
    return await _signed_download(x, x.endpoint.path.rstrip("/") + msg.file_path(DOWNLOAD_FILE))


async def ota(x: Exchange) -> Worked:
    return await _signed_download(x, x.endpoint.path.rstrip("/") + msg.OTA_PATH)


async def get(x: Exchange) -> Worked:
    expected = "a 2xx or 3xx answer"
    answer = await _http(x, "GET", x.endpoint.path, expected=expected)
    _refuse_errors(x, answer, f"GET {x.endpoint.path}", expected)
    return Worked(f"GET {x.endpoint.path} answered {answer.response.status_line}")


async def help_page(x: Exchange) -> Worked:
    expected = f"200 with the page titled {msg.HELP_TITLE!r}"
    answer = await _http(x, "GET", x.endpoint.path, expected=expected)
    _require_200(x, answer, f"GET {x.endpoint.path}", expected)
    if not msg.is_help_page(answer.body):
        title = page_title(answer.body)
        seen = f"a page titled {title!r}" if title else f"{len(answer.body)} bytes without the help title"
        raise x.fail("the online-help page", seen, f"<title>{msg.HELP_TITLE}</title> (a block page?)")
    return Worked("help page served")


async def generate_204(x: Exchange) -> Worked:
    """AOSP NetworkMonitor's rule: 204 is success; "Empty 200 response interpreted as 204 response";
    any other 200-399 is a portal (here: tampered); 4xx/5xx failed (refused)."""
    target = x.endpoint.path
    expected = "204 No Content"
    answer = await _http(x, "GET", target, expected=expected)
    _refuse_errors(x, answer, f"GET {target}", expected)
    status = answer.response.status
    if status == 204:
        return Worked("connectivity check answered 204")
    if status == 200 and not answer.body:
        x.transcript.note("empty 200 interpreted as 204 (AOSP NetworkMonitor)")
        return Worked("connectivity check answered an empty 200 (interpreted as 204, as AOSP)")
    raise ProbeFailed(
        classify(
            OriginAnswer(
                x.origin,
                f"GET {target}",
                status,
                answer.response.reason,
                answer.response.headers,
                answer.body[:4096],
                f"{expected} (Android treats any other 2xx/3xx as a captive portal)",
            )
        )
    )


def _dyngate_s(path: str) -> str:
    query = parse_qs(urlsplit(path).query)
    return query.get("s", [""])[0]


async def dyngate_in(x: Exchange) -> Worked:
    target = x.endpoint.path
    s = _dyngate_s(target)
    expected = f"200 'DYNGATE OK s={s}'"
    answer = await _http(x, "GET", target, expected=expected)
    _require_200(x, answer, f"GET {target}", expected)
    got_s, _ = _check(x, msg.parse_dyngate_answer, answer.body, "the DynGate answer", expected)
    if got_s != s:
        raise x.fail("the DynGate answer", f"s={got_s}", f"s={s}")
    return Worked("DynGate poll answered")


async def dyngate_out(x: Exchange) -> Worked:
    target = x.endpoint.path
    s = _dyngate_s(target)
    n = len(DYNGATE_OUT_BYTES)
    expected = f"200 'DYNGATE OK s={s} bytes={n}'"
    answer = await _http(
        x, "POST", target, body=DYNGATE_OUT_BYTES, content_type="application/octet-stream", expected=expected
    )
    _require_200(x, answer, f"POST {target}", expected)
    got_s, got_n = _check(x, msg.parse_dyngate_answer, answer.body, "the DynGate answer", expected)
    if got_s != s or got_n != n:
        raise x.fail("the DynGate answer", f"s={got_s} bytes={got_n}", f"s={s} bytes={n}")
    return Worked(f"DynGate post of {n} bytes acknowledged")


# -- raw TCP --------------------------------------------------------------------------------------------


async def _read_line(x: Exchange, stream: Stream, expected: str) -> bytes:
    buf = bytearray()
    stream.expected = expected
    for _ in range(MAX_LINE + 1):
        nl = buf.find(b"\n")
        if nl >= 0:
            line = bytes(buf[: nl + 1])
            x.transcript.received(repr(line), tunnel=True)
            return line
        if len(buf) > MAX_LINE:
            break
        data = await stream.read(MAX_LINE)
        if not data:
            raise stream.cut_eof()
        buf += data
    raise x.fail("the raw TCP answer", f"{bytes(buf[:60])!r} with no line end", expected)


def _raw_answer_failed(x: Exchange, line: bytes, request: str, expected: str, exc: ValueError) -> ProbeFailed:
    """A raw protocol answered by an HTTP status line is a filter's refusal; anything else, tampered."""
    try:
        head = parse_response(line + b"\r\n")
    except (NotHttpError, RemoteProtocolError):
        head = None
    if head is not None and head.status >= 400:
        return ProbeFailed(
            classify(OriginAnswer(x.origin, request, head.status, head.reason, (), b"", expected))
        )
    return x.fail(f"the answer to {request}", str(exc), expected)


async def teamviewer(x: Exchange) -> Worked:
    """HELLO, hold the session idle for `teamviewer_hold_s`, then PING: an idle-timeout proxy cuts it."""
    stream = await x.open()
    try:
        hello = msg.teamviewer_hello(x.settings.meter_id)
        stream.during = "during the TeamViewer HELLO"
        await stream.write(hello)
        x.transcript.sent(repr(hello), tunnel=True)
        line = await _read_line(x, stream, "\\x17\\x24OK <session>")
        try:
            session = msg.parse_teamviewer_ok(line)
        except ValueError as exc:
            raise _raw_answer_failed(x, line, "the TeamViewer HELLO", "\\x17\\x24OK <session>", exc) from exc
        hold = x.settings.teamviewer_hold_s
        await hold_quiet(stream, x.transcript, hold, what=f"TeamViewer session {session}",
                         read_timeout_s=x.settings.read_timeout_s)  # fmt: skip
        stream.during = f"during the TeamViewer session (PING after {hold:g} s idle)"
        await stream.write(msg.TV_PING)
        x.transcript.sent(repr(msg.TV_PING), tunnel=True)
        pong = await _read_line(x, stream, "\\x17\\x24PONG")
        if pong != msg.TV_PONG:
            raise x.fail("the TeamViewer PING", repr(pong), repr(msg.TV_PONG))
    finally:
        stream.close()
    return Worked(f"TeamViewer session {session} held {hold:g} s and answered PING")


async def mtalk(x: Exchange) -> Worked:
    stream = await x.open()
    try:
        stream.during = "during the mtalk HELLO"
        await stream.write(msg.MTALK_HELLO)
        x.transcript.sent(repr(msg.MTALK_HELLO), tunnel=True)
        line = await _read_line(x, stream, repr(msg.MTALK_OK))
        if line != msg.MTALK_OK:
            raise _raw_answer_failed(x, line, "the mtalk HELLO", repr(msg.MTALK_OK), ValueError(repr(line)))
        hold = x.settings.mtalk_hold_s
        if hold <= 0:
            return Worked("mtalk answered OK")
        await hold_quiet(stream, x.transcript, hold, what="the mtalk session", read_timeout_s=x.settings.read_timeout_s)
        stream.during = f"during the mtalk keep-alive (after {hold:g} s idle)"
        await stream.write(msg.MTALK_PING)
        x.transcript.sent(repr(msg.MTALK_PING), tunnel=True)
        pong = await _read_line(x, stream, repr(msg.MTALK_PONG))
        if pong != msg.MTALK_PONG:
            raise x.fail("the mtalk keep-alive", repr(pong), repr(msg.MTALK_PONG))
    finally:
        stream.close()
    return Worked(f"mtalk answered OK, held {hold:g} s and answered its keep-alive")


# -- field probes (proxy-lab check against real back ends) -----------------------------------------


async def reach(x: Exchange) -> Worked:
    """Field probe: real back ends do not speak the lab's XML, so reaching them is the proof.

    raw TCP: the 200 to CONNECT and an open tunnel; TLS: a handshake verified against the device's
    trust, then any HTTP answer from the origin; plain HTTP: any answer but a filter's 403/451.
    """
    ep = x.endpoint
    if ep.transport == "tcp":
        # Hold the tunnel quiet for a moment, as a TeamViewer session does: a proxy that closes
        # quiet tunnels (idle timeout) or forbids the port after the 200 shows itself here.
        s = x.settings
        hold = s.mtalk_hold_s if ep.port == 5228 else s.teamviewer_hold_s
        stream = await x.open()
        try:
            if await hold_quiet(stream, x.transcript, hold, what=f"the tunnel to {ep.authority}", read_timeout_s=s.read_timeout_s):
                return Worked(f"tunnel to {ep.authority} opened; the server spoke first")
            return Worked(f"tunnel to {ep.authority} opened and held {hold:g} s")
        finally:
            stream.close()
    method = "GET"
    answer = await _http(x, method, ep.path, expected="any answer from the origin")
    if ep.transport == "http" and answer.response.status in (403, 407, 451):
        _refuse_errors(x, answer, f"GET {ep.path}", "the origin's answer, not a filter's")
    return Worked(f"{method} {ep.path} answered {answer.response.status_line}")


async def bulk_get(x: Exchange) -> Worked:
    """Field bandwidth probe: GET a large file through the proxy and measure the throughput."""
    expected = "200 with the file"
    answer = await _http(x, "GET", x.endpoint.path, expected=expected)
    _require_200(x, answer, f"GET {x.endpoint.path}", expected)
    x.evidence.kbps = answer.kbps
    x.transcript.note(f"downloaded {len(answer.body)} bytes in {answer.elapsed_s * 1000:.0f} ms: {answer.kbps:.0f} kbit/s")
    return Worked(f"downloaded {len(answer.body)} bytes", kbps=answer.kbps, min_kbps=x.settings.min_kbps)


EXCHANGES: dict[str, Callable[[Exchange], Awaitable[Worked]]] = {
    "authenticate": authenticate,
    "refill": refill,
    "audit": audit,
    "psd_config": psd_config,
    "transactions": transactions,
    "download_index": download_index,
    "download": download,
    "ota": ota,
    "get": get,
    "accounting": accounting,
    "help_page": help_page,
    "health_upload": health_upload,
    "generate_204": generate_204,
    "reach": reach,
    "bulk_get": bulk_get,
    "dyngate_in": dyngate_in,
    "dyngate_out": dyngate_out,
    "teamviewer": teamviewer,
    "mtalk": mtalk,
}
