"""Any file, however broken, gets a one-line ProductConfigError or a model, a lab rewrite and a fix: never a crash."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from proxy_lab.productconf import LabFacts, Problem, ProductConfigError, for_lab, parse_config, propose_fix

# words of both products, odd tokens among them: a lone quote, a backslash, a comment sign, bad numbers
WORDS = (
    "http_port", "acl", "http_access", "allow", "deny", "!SSL_ports", "SSL_ports", "port", "src", "dstdomain", "3128",
    "10.0.0.1:3128", "[::1]:3128", '"/no/such/file"', '"', "\\", "#", "cache_dir", "ufs", "include", "Port", "Listen",
    "Allow", "ConnectPort", "Filter", "-1", "65536", "1-2", "ssl-bump", "ssl_bump", "bump", "delay_access",
    "delay_parameters", "1", "a/b", "tls_outgoing_options", "cafile=", "cache_peer", "User", "Group", "PidFile",
    "configuration_includes_quoted_values", "on", 'parameters("/x")', "any-of", "all-of", "access_log", "tcp://x:1",
)  # fmt: skip
PROBLEMS = [
    Problem(cause, ("http://a.pb.com/", "tcp://b.pb.com:5938/", "https://c.pb.com/"))
    for cause in ("allow_ports", "exclusions", "tls_inspect", "throttle", "refused", "deny_hosts", "credentials")
]


@pytest.mark.parametrize("seed", range(4))
def test_random_files_never_crash_the_engine(seed: int, tmp_path: Path) -> None:
    rnd = random.Random(seed)
    facts = LabFacts("127.0.0.1", tmp_path / "lab", "127.0.0.2", tmp_path / "pb.pem")
    outcomes = {"refused": 0, "rewritten": 0}
    for _ in range(150):  # bounded
        product = rnd.choice(["squid", "tinyproxy"])
        lines = ["http_port 3128\n" if product == "squid" else "Port 8888\n"]
        lines += [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(0, 6))) + rnd.choice(["\n", "\r\n", ""]) for _ in range(rnd.randint(0, 12))]
        rnd.shuffle(lines)
        f = tmp_path / "fuzz.conf"
        f.write_text("".join(lines))
        try:
            model = parse_config(f, product)
            for_lab(model, facts)
            propose_fix(model, PROBLEMS, meter_ip="10.20.30.40", fix_dir=tmp_path)
        except ProductConfigError as exc:
            assert len(str(exc).splitlines()) == 1
            outcomes["refused"] += 1
        else:
            outcomes["rewritten"] += 1
    assert outcomes["refused"] and outcomes["rewritten"]  # both paths were exercised
