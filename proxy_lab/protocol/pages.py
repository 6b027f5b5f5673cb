"""The HTML pages the cloud serves on port 80: the online help and a plain origin page per host.

The help page carries a marker (`<title>SendPro C Series Help</title>`) that a proxy's block or
captive page does not, so the device can tell the real page from a substitute.
"""

from __future__ import annotations

import html

HELP_TITLE = "SendPro C Series Help"


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
