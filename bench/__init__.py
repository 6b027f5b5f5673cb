"""The proxy-lab benchmark harness (`make bench`; the figures and targets are described in docs/performance.md).

Modules: `wire` (the tiny protocol the target servers speak and the data pattern they check),
`servers` (echo, sink and source on loopback, run in their own process), `procs` (starting,
stopping and metering processes through /proc), `peers` (the lab proxy, tinyproxy, Squid,
mitmproxy, proxy.py, haproxy and the direct baseline), `client` (opening tunnels), `measure`
(each figure), `report` (tables, ratios, targets, results.json) and `run` (the command line).
Everything runs on 127.0.0.1 only; every loop is bounded in count and in time.
"""
