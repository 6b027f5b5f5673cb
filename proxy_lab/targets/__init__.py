"""Targets: what is under test, started for one scenario and handed to the device as a proxy address.

A target turns a scenario's `[proxy]` table into a running proxy: `lab` (the lab proxy with the
scenario's faults, `targets.lab`), `url` (an existing proxy, nothing started, `targets.url`), or a
real product (`squid`, `tinyproxy`, `mitmproxy`, `proxypy`: `targets.real`, with one module each
turning a product-neutral `Policy` into the product's configuration). A target that cannot express a
scenario raises TargetSkipped with the reason (reported as skipped, never as passed); one that fails
to start raises SetupError (reported apart from outcomes); both live in `proxy_lab.errors`.

Layout, each module importing only what is below it:
- `base`: `Target` (the Protocol every target meets) and `ProxyEndpoint`;
- `product`, `presets`, `htpasswd`: pure helpers (a scenario's Policy, the presets, password files);
- `squid`, `tinyproxy`, `mitmproxy_target`, `proxypy`: one product's configuration each;
- `lab`, `url`, `real`: the targets;
- `registry`: `get_target(name)` and `target_names()`, the one place that lists them.

This package's `__init__` imports nothing, so a module of it can be imported alone.
"""
