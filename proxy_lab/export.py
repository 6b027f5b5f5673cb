"""`proxy-lab export`: the guide's endpoints for one model, in the formats network tools take.

Owns `render(catalog, model, fmt)`, a pure function of the catalog, and the `export` subcommand
(`add_parser(sub)`). Formats:

- `json`: one record per endpoint (and one per wildcard the guide itself writes), modelled on
  Microsoft's published Microsoft 365 endpoint list (`id`, `serviceArea`,
  `serviceAreaDisplayName`, `urls`, `tcpPorts`/`udpPorts`, `required`, `notes`), plus the catalog's
  own fields: the stable endpoint id, scheme, host, port, transport, path, the guide's section and
  words, and the assumptions behind the record. docs/export-schema.json is its schema.
- `csv`: the same records, one a line.
- `squid`: `acl` + `http_access` + `ssl_bump splice` lines for the meter, to include in squid.conf.
- `tinyproxy`: `ConnectPort` lines and the `Filter` settings for an allow-list, with
  `tinyproxy-filter` the filter file itself (anchored extended regular expressions).
- `hosts`: the plain list of host names, for firewall FQDN objects or an external dynamic list.

Exact host names only, and no wildcard but those the guide writes (`*.TeamViewer.com`,
`*.dyngate.com`). DNS to 8.8.8.8 goes direct, not through a proxy, so it is in `json` and `csv`
only.
"""

from __future__ import annotations

import argparse
import csv
import io
import ipaddress
import json
from typing import Any

from proxy_lab.catalog import MODELS, Catalog, Endpoint, Service, load_catalog
from proxy_lab.cliargs import write_output
from proxy_lab.errors import ConfigError
from proxy_lab.resolver import is_ip

FORMATS = ("json", "csv", "squid", "tinyproxy", "tinyproxy-filter", "hosts")
DEFAULT_FILTER_PATH = "/etc/tinyproxy/sendpro-filter"
CSV_COLUMNS = (
    "id", "endpoint", "kind", "serviceArea", "serviceAreaDisplayName", "level", "required", "scheme",
    "host", "port", "transport", "path", "viaProxy", "section", "item", "guideHost", "way", "assumptions",
)  # fmt: skip


def _ports(e: Endpoint) -> dict[str, str]:
    """Microsoft's form: `tcpPorts` / `udpPorts` as comma-separated strings."""
    return {"udpPorts": str(e.port)} if e.scheme == "dns+udp" else {"tcpPorts": str(e.port)}


def _common(s: Service) -> dict[str, Any]:
    out: dict[str, Any] = {
        "serviceArea": s.name,
        "serviceAreaDisplayName": s.title,
        "required": s.required,
        "level": s.level,
        "section": s.section,
        "item": s.item,
    }
    if not s.required:
        out["notes"] = f"Recommended, not required: {s.summary}"
    return out


def records(catalog: Catalog, model: str) -> list[dict[str, Any]]:
    """One record per endpoint of `model`'s services, then one per wildcard the guide writes."""
    out: list[dict[str, Any]] = []
    services = catalog.for_model(model)
    for s in services:
        for e in s.endpoints:
            rec: dict[str, Any] = {
                "id": len(out) + 1, "endpoint": e.id, "kind": "endpoint", **_common(s),
                "urls": [e.host], "scheme": e.scheme, "host": e.host, "port": e.port, **_ports(e),
                "transport": e.transport, "path": e.path, "viaProxy": e.via_proxy,
            }  # fmt: skip
            if e.guide_host:
                rec["guideHost"] = e.guide_host
            if e.way:
                rec["way"] = e.way
            ids = catalog.assumptions_of(e)
            if ids:
                rec["assumptions"] = [{"id": i, "text": catalog.assumptions[i]} for i in ids]
            out.append(rec)
    for s in services:
        for p in s.patterns:
            out.append({"id": len(out) + 1, "endpoint": f"{s.name}/{p}", "kind": "pattern", **_common(s), "urls": [p]})
    return out


def _csv(recs: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in recs:
        row = {k: r.get(k, "") for k in CSV_COLUMNS}
        row["required"] = "true" if r["required"] else "false"
        row["viaProxy"] = "" if "viaProxy" not in r else ("true" if r["viaProxy"] else "false")
        row["assumptions"] = ";".join(a["id"] for a in r.get("assumptions", []))
        if r["kind"] == "pattern":
            row["host"] = r["urls"][0]
        w.writerow(row)
    return buf.getvalue()


# -- proxy allow-lists -----------------------------------------------------------------------------
def _patterns(catalog: Catalog, model: str) -> list[str]:
    """The guide's wildcards for this model, lower-cased: `*.teamviewer.com`."""
    return list(dict.fromkeys(p.lower() for s in catalog.for_model(model) for p in s.patterns))


def _covered(host: str, patterns: list[str]) -> str | None:
    return next((p for p in patterns if host.endswith(p[1:])), None)


def allowed_hosts(catalog: Catalog, model: str) -> tuple[list[str], list[str]]:
    """(exact host names a proxy must let the meter reach, the guide's wildcards), in catalog
    order; IP literals (direct DNS) and hosts under one of the wildcards left out."""
    patterns = _patterns(catalog, model)
    hosts = dict.fromkeys(
        e.host for e in catalog.endpoints(model) if e.via_proxy and not is_ip(e.host) and not _covered(e.host, patterns)
    )
    return list(hosts), patterns


def _header(catalog: Catalog, model: str, fmt: str, comment: str = "#") -> list[str]:
    return [
        f"{comment} proxy-lab export --model {model} --format {fmt}",
        f"{comment} The {model} meter's destinations, from the {catalog.guide}.",
    ]


def _squid(catalog: Catalog, model: str, meter_ip: str | None) -> str:
    hosts, patterns = allowed_hosts(catalog, model)
    ports = catalog.ports(model)
    who = "sendpro_meter " if meter_ip else ""
    lines = [
        *_header(catalog, model, "squid"),
        "# For Squid built with OpenSSL (ssl::server_name). Include it where Debian's squid.conf includes",
        "# /etc/squid/conf.d/*.conf, after `http_access deny CONNECT !SSL_ports` and before",
        "# `http_access deny all`, and ahead of any ssl_bump rule that bumps.",
        "#",
        "# The meter tunnels every connection with CONNECT, to these ports. They are added to Debian's",
        "# `acl SSL_ports port 443`, which `http_access deny CONNECT !SSL_ports` checks for every client.",
    ]
    lines += [f"acl SSL_ports port {p}" for p in ports if p != 443]
    lines.append(f"acl sendpro_ports port {' '.join(map(str, ports))}")
    if meter_ip:
        lines.append(f"acl sendpro_meter src {meter_ip}")
    lines.append("# Exact host names; a leading dot is one of the guide's own wildcards (*.TeamViewer.com).")
    names = [p[1:] for p in patterns] + hosts
    lines += [f"acl sendpro_hosts dstdomain {n}" for n in names]
    lines += [f"acl sendpro_sni ssl::server_name {n}" for n in names]
    lines += [
        f"http_access allow {who}sendpro_hosts sendpro_ports",
        "# The guide: these URLs must be free of any SSL packet inspection. Splice them, never bump.",
        f"ssl_bump splice {who}sendpro_sni",
    ]
    return "\n".join(lines) + "\n"


def _tinyproxy(catalog: Catalog, model: str, filter_path: str) -> str:
    lines = [
        *_header(catalog, model, "tinyproxy"),
        "# For tinyproxy 1.11 (tinyproxy.conf(5)). With ConnectPort lines, CONNECT reaches only these",
        "# ports; the filter lets every client of this proxy reach only the hosts in the filter file",
        f"# (proxy-lab export --model {model} --format tinyproxy-filter -o {filter_path}).",
    ]
    lines += [f"ConnectPort {p}" for p in catalog.ports(model)]
    lines += [f'Filter "{filter_path}"', "FilterType ere", "FilterDefaultDeny Yes"]
    return "\n".join(lines) + "\n"


def _ere(host: str) -> str:
    return host.replace(".", r"\.")


def _tinyproxy_filter(catalog: Catalog, model: str) -> str:
    hosts, patterns = allowed_hosts(catalog, model)
    lines = [
        *_header(catalog, model, "tinyproxy-filter"),
        "# Anchored extended regular expressions (FilterType ere), one host a line.",
    ]
    for p in patterns:
        lines += [f"# the guide's {p}", f"^.+{_ere(p[1:])}$"]
    lines += [f"^{_ere(h)}$" for h in hosts]
    return "\n".join(lines) + "\n"


def _hosts(catalog: Catalog, model: str) -> str:
    hosts, patterns = allowed_hosts(catalog, model)
    return "".join(f"{h}\n" for h in [*patterns, *hosts])


def render(catalog: Catalog, model: str, fmt: str, *, meter_ip: str | None = None,
           filter_path: str = DEFAULT_FILTER_PATH) -> str:  # fmt: skip
    """The export of `model`'s endpoints in `fmt` (one of FORMATS), as text."""
    if model not in MODELS:
        raise ConfigError(f"--model {model!r}: expected one of {', '.join(MODELS)}")
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if meter_ip is not None and fmt != "squid":
        raise ConfigError("--meter-ip applies to --format squid only")
    if meter_ip is not None and not is_ip(meter_ip.split("/")[0]):
        raise ConfigError(f"--meter-ip {meter_ip!r}: expected an IP address")
    if fmt == "json":
        return json.dumps(records(catalog, model), indent=1) + "\n"
    if fmt == "csv":
        return _csv(records(catalog, model))
    if fmt == "squid":
        return _squid(catalog, model, meter_ip)
    if fmt == "tinyproxy":
        return _tinyproxy(catalog, model, filter_path)
    if fmt == "tinyproxy-filter":
        return _tinyproxy_filter(catalog, model)
    return _hosts(catalog, model)


# -- the command -----------------------------------------------------------------------------------
def _meter_ip(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--meter-ip {value!r}: expected an IP address or network") from exc
    return value


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="write the guide's endpoints for a model as JSON, CSV, a Squid or tinyproxy allow-list, or a host list",
        description=(
            "The connectivity guide's endpoints for one model, exact host names only (no wildcard but the "
            "guide's own *.TeamViewer.com and *.dyngate.com). Example: proxy-lab export --model sendpro-c "
            "--format squid -o /etc/squid/conf.d/sendpro.conf"
        ),
    )
    p.add_argument("--model", choices=MODELS, default="sendpro-plus", help="the meter model (default: sendpro-plus)")
    p.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    p.add_argument("--output", "-o", metavar="PATH", help="write here instead of stdout")
    p.add_argument("--meter-ip", type=_meter_ip, metavar="IP", help="squid: allow only this source address")
    p.add_argument("--filter-path", default=DEFAULT_FILTER_PATH, metavar="PATH",
                   help=f"tinyproxy: where the filter file will be (default {DEFAULT_FILTER_PATH})")  # fmt: skip
    p.set_defaults(handler=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    text = render(load_catalog(), args.model, args.format, meter_ip=args.meter_ip, filter_path=args.filter_path)
    write_output(text, args.output, f"({args.format}, {args.model})")
    return 0
