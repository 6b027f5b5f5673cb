"""The guide's sentences a fix quotes in its comment lines, verbatim (SV63189-gb Rev. C).

Each comment line of a fix says why, in the project's words, then the guide's rule in its own words
between double quotes; tests check every quote against the guide's text.
"""

from __future__ import annotations

COMMENT = "# proxy-lab: "

# Proxy, Overview.
CONNECT_PORT = (
    "The Proxy Server will then establish a TCP connection to the specified destination on behalf of the "
    "SendPro C, SendPro+ using the protocol and port requested by the SendPro C, SendPro+."
)
# URL Information.
NO_OBSTRUCTIONS = "These URLs must be accessible from the device, without any obstructions."
NO_INSPECTION = "This includes being free of any SSL packet inspection, web filtering devices or software monitoring."
# Advanced Network Requirements.
BANDWIDTH = (
    "Pitney Bowes requires a minimum network bandwidth of 384 kbps (upstream and downstream) to operate, "
    "but we recommend 1 Mbit/sec for best performance."
)

QUOTES = (CONNECT_PORT, NO_OBSTRUCTIONS, NO_INSPECTION, BANDWIDTH)


def comment(why: str, rule: str) -> str:
    """One comment line: what the change does and the guide's rule it follows, quoted."""
    return f'{COMMENT}{why}; the guide: "{rule}"'
