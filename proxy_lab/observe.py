"""`proxy-lab observe RECORD.jsonl`: what a real meter did through the lab proxy, service by service.

Reads the recorder's lines (proxy_lab/record), classifies each contact as the device classifier
(proxy_lab/device/classify.py) does where the record holds the evidence, and builds an
`Observation`: per service of the model, contacted or not in the window and the outcome of each
contact; findings with the remedies of proxy_lab.advice, naming who refused (the lab proxy, or the
upstream, i.e. the corporate proxy); the hosts the meter contacted that the guide does not list;
and the guide's endpoints never contacted. Rendering lives in proxy_lab/observe_render.py.

What the record cannot show is not guessed: a tunnel that opened and closed normally is `pass`
(the meter's own verdict on the content is not visible to a proxy), and TLS interception is seen
only where the certificate travels in the clear (TLS 1.2 and earlier).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy_lab.advice import CAUSES, GUIDE_RULES, Scope, cause_of
from proxy_lab.catalog import MODELS, Catalog, load_catalog
from proxy_lab.cliargs import write_output
from proxy_lab.device.classify import ConnectAnswer, StreamCut, Verdict, classify
from proxy_lab.errors import ConfigError
from proxy_lab.observe_render import render
from proxy_lab.outcomes import CertSummary, Evidence, Outcome, Result, worst
from proxy_lab.pki import PB_ROOT_NAME
from proxy_lab.record.index import NOT_IN_GUIDE, CatalogIndex
from proxy_lab.response import parse_challenges

# Assumption (docs/observe.md): a certificate issued by a public CA (the guide's hosts are public
# sites) or by the lab PB root is the origin's own; any other issuer seen in a TLS <= 1.2 handshake
# is an inspection CA. `--expected-issuer` adds names.
PUBLIC_ISSUERS = (
    PB_ROOT_NAME, "DigiCert", "Entrust", "GlobalSign", "Sectigo", "COMODO", "Let's Encrypt", "ISRG",
    "Amazon", "Google Trust Services", "Microsoft", "GoDaddy", "Starfield", "Baltimore", "Thawte",
    "GeoTrust", "IdenTrust", "Symantec", "VeriSign", "QuoVadis", "Cloudflare",
)  # fmt: skip
_FIELDS = ("time", "client", "target", "lab", "end")


@dataclass(frozen=True)
class Contact:
    """One recorded tunnel (or refused request), classified."""

    time: str
    client: str
    target: str
    service: str | None
    endpoint: str  # the guide's URL when matched, else tcp://host:port
    outcome: Outcome
    detail: str
    refused_by: str | None  # "lab", "upstream" or None
    record: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Finding:
    cause: str
    title: str
    refuser: str  # "the upstream proxy 10.0.0.5:8080 (the corporate proxy)" or "the lab proxy"
    outcome: Outcome
    services: tuple[str, ...]
    hosts: tuple[str, ...]
    seen: str
    remedy: str
    rule: str


@dataclass(frozen=True)
class ServiceSeen:
    name: str
    title: str
    level: str
    contacts: tuple[Contact, ...]

    @property
    def outcome(self) -> Outcome | None:
        """The worst contact's outcome; None when not contacted in the window."""
        return worst([c.outcome for c in self.contacts]) if self.contacts else None


@dataclass(frozen=True)
class Observation:
    sources: tuple[str, ...]
    model: str
    first: str
    last: str
    contacts: tuple[Contact, ...]
    services: tuple[ServiceSeen, ...]
    findings: tuple[Finding, ...]
    not_in_guide: tuple[tuple[str, tuple[Contact, ...]], ...]  # (target, its contacts)
    never_contacted: tuple[str, ...]  # the model's guide endpoints never seen (their URLs)

    @property
    def failed(self) -> bool:
        return any(not c.outcome.ok for c in self.contacts)


# -- reading --------------------------------------------------------------------------------------
def read_records(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every line of every file, in order; ConfigError names the file and line of a bad one."""
    records: list[dict[str, Any]] = []
    for path in paths:
        try:
            handle = path.open(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"record file {path}: {exc.strerror or exc}") from exc
        with handle:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not a JSON line ({exc.msg})") from exc
                if not isinstance(record, dict) or (missing := [k for k in _FIELDS if k not in record]):
                    what = f"missing {', '.join(missing)}" if isinstance(record, dict) else "not an object"
                    raise ConfigError(f"{path}:{n}: not a proxy-lab record ({what})")
                if wrong := _wrong_type(record):
                    raise ConfigError(f"{path}:{n}: not a proxy-lab record ({wrong})")
                records.append(record)
    return records


def _wrong_type(record: dict[str, Any]) -> str:
    """What is of the wrong type in a record ("" when nothing is)."""
    for key in ("time", "client", "target", "end"):
        if not isinstance(record[key], str):
            return f"{key} is not a string"
    if ":" not in record["target"]:
        return f"target {record['target'][:60]!r} is not host:port"
    for key in ("lab", "upstream"):
        if not isinstance(record.get(key) or {}, dict):
            return f"{key} is not an object"
    for key in ("bytes_up", "bytes_down"):
        if not isinstance(record.get(key) or 0, int):
            return f"{key} is not a number"
    status = record["lab"].get("status", 0)
    if not isinstance(status, int):
        return "lab.status is not a number"
    return ""


# -- classifying ------------------------------------------------------------------------------------
# Lab faults whose mark on a tunnel (the record's `lab_faults`, or the relay's reason) means the lab did it.
_LAB_MARKS = ("tls_inspect", "idle_timeout", "reset_after", "tamper", "block_page", "throttle", "latency")


def _proxy_name(record: dict[str, Any]) -> str:
    """Who answered or broke this contact, as the findings name it."""
    up = record.get("upstream") or {}
    corporate = f"upstream proxy {up.get('proxy', '?')} (the corporate proxy)"
    refused_by = record.get("refused_by")
    if refused_by == "upstream":
        return corporate
    if refused_by == "lab" or record.get("end") == "refused":
        return "lab proxy"
    faults = record.get("lab_faults") or {}
    inspected = str(faults.get("tls_inspect", "")).startswith("through")
    why = str(record.get("why", ""))
    if inspected or any(mark in faults or why.startswith(mark) for mark in _LAB_MARKS if mark != "tls_inspect"):
        return "lab proxy"
    # A tunnel the lab only relayed: what broke it lies beyond the lab.
    return f"{corporate} or beyond it" if up else "network beyond the lab proxy"


def classify_record(record: dict[str, Any], expected_issuers: Sequence[str] = PUBLIC_ISSUERS) -> Verdict:
    """The outcome of one recorded contact, by the device classifier's rules where the record allows."""
    lab = record.get("lab") or {}
    target = str(record.get("target", "?"))
    proxy = _proxy_name(record)
    if record.get("end") == "refused":
        action = lab.get("action", "respond")
        if action != "respond":
            during = f"while answering CONNECT {target}"
            if action == "reset":
                return classify(StreamCut(proxy, during, "reset", before_answer=True))
            return classify(StreamCut(proxy, during, "eof", before_answer=True))
        headers = _headers_of(record)
        offered = tuple(ch.scheme for ch in parse_challenges([v for k, v in headers if k.lower() == "proxy-authenticate"]))
        auth = None
        if int(lab.get("status", 0)) == 407 and offered:
            up = record.get("upstream") or {}
            auth = "rejected" if up.get("credentials") else "no_credentials"
        return classify(
            ConnectAnswer(proxy, target, int(lab.get("status", 0)), str(lab.get("reason", "")), headers, auth=auth, offered=offered)  # type: ignore[arg-type]
        )
    issuer = record.get("issuer") or ""
    if issuer and not any(name.lower() in issuer.lower() for name in expected_issuers):
        return Verdict(
            Outcome.TLS_INTERCEPTED,
            f"the server side of the tunnel to {target} presented a certificate issued by '{issuer}', "
            f"not by the origin's CA (SNI {record.get('sni') or 'none'})",
        )
    end = str(record.get("end", ""))
    down = int(record.get("bytes_down", 0) or 0)
    if end in ("client reset", "server reset", "reset", "idle timeout"):
        peer = "the client" if end == "client reset" else f"the tunnel to {target}"
        during = "after an idle period (idle timeout)" if end == "idle timeout" else "mid-exchange"
        return classify(StreamCut(peer, during, "reset", after_bytes=down))
    if end == "server closed" and down == 0 and int(record.get("bytes_up", 0) or 0) > 0:
        return classify(StreamCut(f"the tunnel to {target}", "before the server answered", "eof", expected="an answer"))
    return Verdict(Outcome.PASS, f"tunnel to {target} opened and ended normally ({end})")


def _headers_of(record: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    source = (record.get("upstream") or {}) if record.get("refused_by") == "upstream" else (record.get("lab") or {})
    return tuple((str(k), str(v)) for k, v in source.get("headers") or [])


_Seen = tuple[str | None, str, Verdict]  # service, endpoint URL, verdict


def _evidence_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """Everything `classify_record` and the catalog match read: records alike in it are classified once
    (a week of recording repeats the same few dozen contacts)."""
    lab, up = record.get("lab") or {}, record.get("upstream") or {}
    headers = tuple(tuple(h) for h in (up.get("headers") or ())) + tuple(tuple(h) for h in (lab.get("headers") or ()))
    return (
        record["target"], record.get("end"), record.get("refused_by"), lab.get("status"), lab.get("reason"),
        lab.get("action"), up.get("proxy"), up.get("credentials"), headers, record.get("issuer"), record.get("sni"),
        not record.get("bytes_down"), bool(record.get("bytes_up")),
    )  # fmt: skip


def _contact(record: dict[str, Any], index: CatalogIndex, expected: Sequence[str], memo: dict[tuple[Any, ...], _Seen]) -> Contact:
    key = _evidence_key(record)
    seen = memo.get(key)
    target = str(record["target"])
    if seen is None:
        host, _, port = target.rpartition(":")
        matched = index.match(host.strip("[]"), int(port) if port.isdigit() else 0)
        seen = memo[key] = (
            matched[0].service if matched else None,
            matched[0].url if matched else f"tcp://{target}",
            classify_record(record, expected),
        )
    service, url, verdict = seen
    return Contact(
        str(record["time"]), str(record["client"]), target, service, url, verdict.outcome, verdict.detail,
        record.get("refused_by"), record,
    )  # fmt: skip


def _result(c: Contact) -> Result:
    """The contact as the reports' Result, so proxy_lab.advice finds the same cause and remedy."""
    record = c.record
    lab = record.get("lab") or {}
    ev = Evidence(
        transcript=[f"! {c.detail}"],
        connect_status=int(lab["status"]) if "status" in lab else (200 if record.get("end") != "refused" else None),
        connect_reason=str(lab.get("reason", "")),
        connect_headers=list(_headers_of(record)),
        auth_schemes=[v for k, v in _headers_of(record) if k.lower() == "proxy-authenticate"],
        chain_shown=[CertSummary("", str(record["issuer"]), "", "", "")] if record.get("issuer") else [],
        bytes_sent=int(record.get("bytes_up", 0) or 0),
        bytes_received=int(record.get("bytes_down", 0) or 0),
    )
    return Result("observe", c.service or NOT_IN_GUIDE, c.endpoint, c.outcome, c.detail, ev)


def observe(
    records: Iterable[dict[str, Any]],
    *,
    model: str = "sendpro-plus",
    sources: Sequence[str] = (),
    catalog: Catalog | None = None,
    expected_issuers: Sequence[str] = PUBLIC_ISSUERS,
) -> Observation:
    catalog = catalog or load_catalog()
    services = catalog.for_model(model)
    index = CatalogIndex(catalog)
    memo: dict[tuple[Any, ...], _Seen] = {}
    contacts = [_contact(r, index, expected_issuers, memo) for r in records]
    seen_targets = {c.target.lower() for c in contacts}
    rows = tuple(
        ServiceSeen(s.name, s.title, s.level, tuple(c for c in contacts if c.service == s.name)) for s in services
    )
    others: dict[str, list[Contact]] = {}
    for c in contacts:
        if c.service is None:
            others.setdefault(c.target, []).append(c)
    never = tuple(e.url for s in services for e in s.endpoints if e.via_proxy and e.authority.lower() not in seen_targets)
    times = sorted(c.time for c in contacts)
    return Observation(
        tuple(sources), model, times[0] if times else "", times[-1] if times else "", tuple(contacts), rows,
        tuple(findings_of(contacts)), tuple((t, tuple(cs)) for t, cs in sorted(others.items())), never,
    )  # fmt: skip


def findings_of(contacts: Sequence[Contact]) -> list[Finding]:
    """Failed contacts grouped by cause and refuser, most important cause first (advice.CAUSES order)."""
    groups: dict[tuple[str, str], list[tuple[Contact, Result]]] = {}
    distinct: dict[tuple[str, str, str], tuple[Result, str]] = {}  # (endpoint, detail, refuser) -> result, cause
    for c in contacts:
        if c.outcome.ok:
            continue
        refuser = _proxy_name(c.record)
        key = (c.endpoint, c.detail, refuser)
        if key not in distinct:
            r = _result(c)
            distinct[key] = (r, cause_of(r)[0])
            groups.setdefault((distinct[key][1], refuser), []).append((c, r))
        else:  # the same evidence again: counted under the same finding, not re-examined
            groups[(distinct[key][1], refuser)].append((c, distinct[key][0]))
    order = list(CAUSES)
    out = []
    for (cause_id, refuser), items in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        results = list({id(r): r for _, r in items}.values())  # each distinct piece of evidence once
        cause = CAUSES[cause_id]
        outcome = worst([r.outcome for r in results])
        out.append(
            Finding(
                cause_id, cause.title, f"the {refuser}", outcome,
                tuple(dict.fromkeys(c.service or NOT_IN_GUIDE for c, _ in items)),
                tuple(dict.fromkeys(c.target for c, _ in items)),
                "; ".join(dict.fromkeys(cause_of(r)[1] for r in results)),
                cause.remedy_for(Scope.of(results)), GUIDE_RULES.get(outcome, ""),
            )
        )
    return out


# -- the command ------------------------------------------------------------------------------------
def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("observe", help="report what a real meter did through `proxy-lab proxy --record` (docs/observe.md)")
    p.add_argument("records", nargs="+", type=Path, metavar="RECORD.jsonl",
                   help="the recording (give PATH.1 first to include the rotated part)")  # fmt: skip
    p.add_argument("--model", choices=MODELS, default="sendpro-plus")
    p.add_argument("--format", choices=("terminal", "json", "markdown", "html"), default="terminal")
    p.add_argument("--output", "-o", metavar="PATH", help="write the report here instead of stdout")
    p.add_argument("--expected-issuer", action="append", default=[], metavar="NAME",
                   help="a CA name that signs the real hosts' certificates (added to the public CAs)")  # fmt: skip
    p.set_defaults(handler=cmd_observe)


def cmd_observe(args: argparse.Namespace) -> int:
    records = read_records(args.records)
    result = observe(
        records, model=args.model, sources=[str(p) for p in args.records],
        expected_issuers=(*PUBLIC_ISSUERS, *args.expected_issuer),
    )  # fmt: skip
    write_output(render(result, args.format), args.output, f"({args.format})")
    return 1 if result.failed else 0
