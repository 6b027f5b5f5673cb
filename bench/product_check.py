"""How long one `check --product` takes, product start included: `python -m bench.product_check [--runs 3]`.

Each run is the whole command as a user types it (`proxy-lab check --product P --config FILE`), in
a fresh process: namespace, cloud, the product started with the file, the model's 176 endpoints and
the bandwidth download, the product stopped and the namespace removed. Configurations: Debian's own
squid.conf with an `http_access allow` for the meter (fails on its port rule), the same file with the
port rule fixed (passes), and Debian's own tinyproxy.conf (refuses the meter). The issue's target:
under 20 s on the 2-core machine. Needs root, squid-openssl and tinyproxy. Bounded: `--runs` runs of
each, each killed after 120 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 20.0
METER = "10.20.30.40"


def configs(tmp: Path) -> list[tuple[str, str, Path]]:
    stock = Path("/etc/squid/squid.conf").read_text()
    allowed = stock.replace("\nhttp_access allow localhost\n", f"\nacl meter src {METER}\nhttp_access allow meter\nhttp_access allow localhost\n", 1)
    (tmp / "squid.conf").write_text(allowed)
    (tmp / "squid-fixed.conf").write_text(allowed.replace("\nacl SSL_ports port 443\n", "\nacl SSL_ports port 443\nacl SSL_ports port 80 5228 5938\n", 1))
    return [
        ("squid, Debian's file + allow for the meter (fails)", "squid", tmp / "squid.conf"),
        ("squid, the same with the port rule fixed (passes)", "squid", tmp / "squid-fixed.conf"),
        ("tinyproxy, Debian's file (refuses the meter)", "tinyproxy", Path("/etc/tinyproxy/tinyproxy.conf")),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="proxy-lab-bench-", dir="/tmp"))
    tmp.chmod(0o755)
    try:
        print("| configuration | exit | median s | max s | target |\n|---|---|---|---|---|")
        for label, product, config in configs(tmp):
            times: list[float] = []
            code = -1
            for _ in range(args.runs):
                start = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-m", "proxy_lab.cli", "--certs", str(tmp / "certs"), "check", "--product", product,
                     "--config", str(config), "--meter-ip", METER],
                    capture_output=True, timeout=120, check=False,
                )  # fmt: skip
                times.append(time.monotonic() - start)
                code = done.returncode
            verdict = "PASS" if max(times) < TARGET_S else "FAIL"
            print(f"| {label} | {code} | {statistics.median(times):.1f} | {max(times):.1f} | < {TARGET_S:g} s: {verdict} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
