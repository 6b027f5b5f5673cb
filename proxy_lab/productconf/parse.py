"""`parse_config`: read a user's squid.conf or tinyproxy.conf, and refuse what is not one.

After the product's parser (`squid_parse`, `tinyproxy_parse`) has read the file, two checks make a
file the lab cannot use fail at once with one line naming the file and the line: a file written for
the other product (judged by the directive names: `Port`/`Allow`/`ConnectPort` are tinyproxy's,
`http_port`/`acl`/`http_access` Squid's), and a file with no TCP port the meter can be set to.
"""

from __future__ import annotations

from pathlib import Path

import proxy_lab.productconf.vocab as vocab
from proxy_lab.productconf.model import PRODUCTS, Product, ProductConfig, ProductConfigError
from proxy_lab.productconf.ports import require_port
from proxy_lab.productconf.squid_parse import parse_squid
from proxy_lab.productconf.tinyproxy_parse import parse_tinyproxy

_NAMES = {"squid": "Squid", "tinyproxy": "tinyproxy"}
_FILES = {"squid": "squid.conf", "tinyproxy": "tinyproxy.conf"}


def _check_product(model: ProductConfig) -> None:
    """Raise when none of the file's directives is the product's and one is the other product's."""
    own = vocab.is_squid if model.product == "squid" else vocab.is_tinyproxy
    other: Product = "tinyproxy" if model.product == "squid" else "squid"
    theirs = vocab.is_tinyproxy if model.product == "squid" else vocab.is_squid
    if any(own(d.name) for d in model.main.directives):
        return
    for d in model.main.directives:
        if theirs(d.name):
            raise ProductConfigError(
                f"{d.where}: `{d.name}` is a {_NAMES[other]} directive, not a {_NAMES[model.product]} one: "
                f"this looks like a {_FILES[other]} (--product {other})",
                path=d.path, line=d.line,
            )  # fmt: skip
    if model.main.directives:
        d = model.main.directives[0]
        raise ProductConfigError(
            f"{d.where}: `{d.name}` is not a {_NAMES[model.product]} directive, and no line of "
            f"{model.path.name} is: not a {_FILES[model.product]}",
            path=d.path, line=d.line,
        )  # fmt: skip


def parse_config(path: Path | str, product: str, *, text: str | None = None) -> ProductConfig:
    """The lossless model of `path` for `product` ("squid" or "tinyproxy"); `text` stands for the
    file's content when given (the fix is re-read this way). Raises ProductConfigError (exit 2) for a
    file that is unreadable, not text, another product's, or has no TCP port the meter can use."""
    if product not in PRODUCTS:
        raise ProductConfigError(f"--product {product!r}: expected one of {', '.join(PRODUCTS)}")
    p = Path(path)
    model = parse_squid(p, text) if product == "squid" else parse_tinyproxy(p, text)
    _check_product(model)
    require_port(model)
    return model
