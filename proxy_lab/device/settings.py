"""The Device's settings, as a person would enter them on the meter's settings screen.

Owns `ProxySettings` (the "Manual" proxy fields of the guide's "Proxy" section: hostname, port,
optional username and password) and `DeviceSettings` (model, timeouts, the guide's 384 kbit/s floor,
and how the device answers a 407). Units are in the names: `_s` seconds, `_kbps` kbit/s.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy_lab.catalog import MODELS
from proxy_lab.errors import ConfigError


@dataclass(frozen=True)
class ProxySettings:
    """The meter's manual proxy: every connection is tunnelled with HTTP CONNECT through it.

    The guide: "If your Proxy Server requires authentication, select the box and additional fields
    will be displayed" (username and password, both sent exactly as typed: case sensitive).
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("proxy host is empty: expected the proxy's IP address or name")
        if not 0 < self.port < 65536:
            raise ConfigError(f"proxy port {self.port} is not 1-65535")
        if (self.username is None) != (self.password is None):
            raise ConfigError("proxy username and password go together: set both or neither")
        if self.username is not None and ":" in self.username:
            # RFC 7617 §2: "a user-id containing a colon character is invalid".
            raise ConfigError(f"proxy username {self.username!r} contains ':' (RFC 7617 forbids it)")

    @property
    def has_credentials(self) -> bool:
        return self.username is not None and self.password is not None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class DeviceSettings:
    """How the simulated meter behaves; the defaults are the guide's and Android 7 OkHttp's."""

    model: str = "sendpro-c"  # or "sendpro-plus"
    proxy: ProxySettings | None = None  # None = direct mode: connect to the address the resolver gives
    meter_id: str = "PBLAB-0001"
    connect_timeout_s: float = 5.0  # TCP connect to the proxy (or, direct, to the origin)
    read_timeout_s: float = 5.0  # every single read; silence longer than this is a timeout
    concurrency: int = 16  # endpoints probed at once by Device.run
    min_kbps: int = 384  # the guide's floor: "a minimum network bandwidth of 384 kbps"
    slow_setup_s: float = 3.0  # a CONNECT that succeeds only after this long is degraded
    teamviewer_hold_s: float = 0.5  # how long the TeamViewer session is held idle before a ping
    mtalk_hold_s: float = 0.0  # how long the mtalk session is held idle before a keep-alive (0: none)
    upload_bytes: int = 48 * 1024  # the body the upload exchange POSTs to time the upstream way
    max_auth_attempts: int = 2  # most CONNECT requests sent for one endpoint while the proxy answers 407
    # Android's OkHttp sends Proxy-Authorization only after a 407 whose challenge offers Basic
    # (AuthenticatorAdapter, RealConnection.createTunnel); True sends it with the first CONNECT.
    preemptive_auth: bool = False
    max_probe_s: float = 60.0  # an upper bound on one endpoint's whole probe (a slow drip is a timeout)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"device model {self.model!r} is unknown: expected one of {', '.join(MODELS)}")
        for name in ("connect_timeout_s", "read_timeout_s", "slow_setup_s", "max_probe_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"device setting {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("teamviewer_hold_s", "mtalk_hold_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"device setting {name} must be >= 0, got {getattr(self, name)!r}")
        if self.concurrency < 1:
            raise ConfigError(f"device setting concurrency must be >= 1, got {self.concurrency!r}")
        if self.max_auth_attempts < 1:
            raise ConfigError(
                f"device setting max_auth_attempts must be >= 1, got {self.max_auth_attempts!r}"
            )
        if not 0 < self.upload_bytes <= 1024 * 1024 * 1024:
            raise ConfigError(f"device setting upload_bytes must be 1..1073741824, got {self.upload_bytes!r}")
        if self.min_kbps < 0:
            raise ConfigError(f"device setting min_kbps must be >= 0, got {self.min_kbps!r}")
        if not self.meter_id:
            raise ConfigError("device setting meter_id is empty")
