"""Where a product listens: every TCP port of a configuration, and which one the meter can use.

Squid: each `http_port`/`https_port`/`ftp_port` is `[address:]port [mode] [options]` (an IPv6
address in brackets). Only a plain `http_port` (no `intercept`, `tproxy`, `transparent` or
`accel`/`vhost`/`vport`/`defaultsite=`) is a forward proxy the meter can send CONNECT to: the meter
speaks plain HTTP to its proxy ("using HTTP CONNECT Tunneling method"), so an `https_port` is not
one either. tinyproxy: one `Port` (the last one given wins) on every `Listen` address (all addresses
without one).
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy_lab.productconf.model import Directive, ProductConfig, ProductConfigError

_NOT_FORWARD = ("intercept", "tproxy", "transparent", "accel", "vhost", "vport")


@dataclass(frozen=True)
class ListenPort:
    """One listening port: the directive that opens it, its address (None: every address) and number."""

    directive: Directive
    host: str | None
    port: int
    forward: bool  # a forward proxy port the meter can use

    def describe(self) -> str:
        return f"`{self.directive}` ({self.directive.path.name} line {self.directive.line})"


def split_address(spec: str, where: str) -> tuple[str | None, int]:
    """`3128`, `10.0.0.5:3128`, `[::1]:3128` -> (address or None, port); raises ProductConfigError."""
    host: str | None = None
    port = spec
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        port = rest.removeprefix(":")
    elif ":" in spec:
        host, _, port = spec.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ProductConfigError(f"{where}: {spec!r} is not a TCP port (expected [address:]port, port 1-65535)")
    return host or None, int(port)


def squid_ports(model: ProductConfig) -> list[ListenPort]:
    out: list[ListenPort] = []
    for d in model.named("http_port", "https_port", "ftp_port"):
        if not d.args:
            raise ProductConfigError(f"{d.where}: {d.name} without a port", path=d.path, line=d.line)
        host, port = split_address(d.args[0], f"{d.where}: {d.name}")
        opts = d.args[1:]
        forward = d.key == "http_port" and not any(o.split("=")[0] in _NOT_FORWARD or o.startswith("defaultsite=") for o in opts)
        out.append(ListenPort(d, host, port, forward))
    return out


def tinyproxy_ports(model: ProductConfig) -> list[ListenPort]:
    ports = model.named("port")
    if not ports:
        return []
    last = ports[-1]
    if len(last.args) != 1 or not last.args[0].isdigit() or not 0 < int(last.args[0]) < 65536:
        raise ProductConfigError(f"{last.where}: `{last}`: Port takes one number 1-65535", path=last.path, line=last.line)
    listens = model.named("listen")
    if not listens:
        return [ListenPort(last, None, int(last.args[0]), True)]
    return [ListenPort(last, d.args[0] if d.args else None, int(last.args[0]), True) for d in listens]


def listen_ports(model: ProductConfig) -> list[ListenPort]:
    return squid_ports(model) if model.product == "squid" else tinyproxy_ports(model)


def require_port(model: ProductConfig) -> list[ListenPort]:
    """The configuration's ports; raises ProductConfigError when none is a TCP port the meter can use."""
    ports = listen_ports(model)
    if model.product == "tinyproxy" and not ports:
        raise ProductConfigError(
            f"{model.path}: no `Port` line: tinyproxy would not start ('You MUST set a Port in the config file')",
            path=model.path,
        )
    if model.product == "squid" and not any(p.forward for p in ports):
        if not ports:
            raise ProductConfigError(
                f"{model.path}: no `http_port` line: this Squid listens on no TCP port the meter could use",
                path=model.path,
            )
        others = ", ".join(p.describe() for p in ports)
        raise ProductConfigError(
            f"{model.path}: no forward-proxy `http_port`: {others} cannot take the meter's CONNECT "
            "(intercepting, accelerator and TLS ports are not proxies the meter can be set to)",
            path=model.path, line=ports[0].directive.line,
        )  # fmt: skip
    return ports


def choose_port(model: ProductConfig, wanted: int | None) -> tuple[ListenPort, str]:
    """The port the meter is set to (`--port N`, default the first it can use) and a sentence saying which."""
    ports = require_port(model)
    usable = [p for p in ports if p.forward]
    if wanted is None:
        chosen = usable[0]
        note = f"the meter uses port {chosen.port}: {chosen.describe()}"
        if len(ports) > 1:
            note += f", the first of {len(ports)} listening ports (--port N to check another)"
        return chosen, note
    for p in usable:
        if p.port == wanted:
            return p, f"the meter uses port {p.port}: {p.describe()} (--port {wanted})"
    listed = ", ".join(f"{p.port} ({p.directive.path.name} line {p.directive.line}{'' if p.forward else ', not a forward proxy port'})" for p in ports)
    raise ProductConfigError(f"--port {wanted}: {model.path} has no forward-proxy port {wanted}; it listens on {listed}", path=model.path)
