"""Proxy-Authorization under abuse: malformed credentials get 407 or 400, never a crash, never a leak.

tests/proxy/test_auth.py covers the parser's cases one by one and a property over arbitrary
values; here the same abuse goes through a real lab proxy (the answer, the proxy staying up, a log
without traceback or secret), the comparison is shown to visit every user whatever matches, and a
report of every format is rendered from a transcript that carries credentials.
"""

from __future__ import annotations

import base64
import hmac
import logging

import pytest

from proxy_lab.outcomes import Evidence, Outcome, Result, service_outcomes
from proxy_lab.proxy import ProxyConfig
from proxy_lab.proxy import auth as auth_mod
from proxy_lab.proxy.auth import BasicAuth
from proxy_lab.report import FORMATS, render
from proxy_lab.runner import ScenarioRun
from proxy_lab.scenarios import CloudSpec, DeviceSpec, Expectation, ProxySpec, Scenario
from tests.hardening.hardening_kit import ECHO_HOST, Raw, captured_proxy_log, proxy_to_echo, run

SECRET = "Pw-7f3a9-Zebra"  # the password under test; it must never be written anywhere
USER = "meter"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


TOKEN = b64(f"{USER}:{SECRET}".encode())
LEAKS = (SECRET, TOKEN, b64(f"{USER}:{SECRET}x".encode()), b64(f"{USER}{SECRET}".encode()))


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("Basic !!!" + SECRET, 407),  # not base64 at all
        ("Basic " + TOKEN[:-3], 407),  # base64 with its padding cut off
        ("Basic " + b64(f"{USER}{SECRET}".encode()), 407),  # no colon between user-id and password
        ("Basic " + b64(b"meter:\xff\xfe" + SECRET.encode()), 407),  # not UTF-8 (a Latin-1 client)
        ("Basic " + b64(f":{SECRET}".encode()), 407),  # empty user-id
        ("Bearer " + TOKEN, 407),  # wrong scheme
        ("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", 407),  # NTLM type 1 to a Basic proxy
        ("Basic", 407),  # scheme without credentials
        ("Basic      ", 407),  # scheme and only whitespace
        ("", 407),  # an empty field
        ("Basic " + TOKEN + " trailing", 407),  # extra words after the token
        ("Basic " + b64(f"{USER}:{SECRET}x".encode()), 407),  # wrong password
        ("Basic " + b64(("A" * 5000 + ":" + SECRET).encode()), 407),  # a 5000-character user-id
        ("Basic " + TOKEN + "\x01", 400),  # a control byte after the token
        ("basic " + TOKEN, 200),  # lower-case scheme: RFC 7617 scheme names are case-insensitive
    ],
)
def test_malformed_credentials_get_407_or_400_never_a_crash_and_never_reach_the_log(value: str, status: int) -> None:
    async def scenario() -> None:
        async with captured_proxy_log() as log, proxy_to_echo(ProxyConfig(users={USER: SECRET})) as proxy:
            c = await Raw.open(proxy)
            await c.send(f"CONNECT {ECHO_HOST}:443 HTTP/1.1\r\nProxy-Authorization: {value}\r\n\r\n".encode("latin-1"))
            got, head = await c.head()
            assert got == status
            if status == 407:
                assert head.get("Proxy-Authenticate") == 'Basic realm="proxy-lab"'
            await c.close()
            # the proxy is still up: the right credentials get a tunnel on a new connection
            c = await Raw.open(proxy)
            await c.send(f"CONNECT {ECHO_HOST}:443 HTTP/1.1\r\nProxy-Authorization: Basic {TOKEN}\r\n\r\n".encode())
            assert (await c.head())[0] == 200
            await c.close()
            kept = "\n".join(f"{r.message} {r.reason}" for r in proxy.log)
            for text in (log.text, kept):
                assert not [leak for leak in LEAKS if leak in text]
            assert log.tracebacks == []
            assert "refused" in kept or status == 200  # negative control: the log does record the refusal

    run(scenario())


def test_a_proxy_that_insists_on_basic_refuses_lowercase_basic_with_407() -> None:
    async def scenario() -> None:
        config = ProxyConfig(users={USER: SECRET}, accept_lowercase_basic=False)
        async with captured_proxy_log() as log, proxy_to_echo(config) as proxy:
            for scheme, status in (("basic", 407), ("BASIC", 407), ("Basic", 200)):
                c = await Raw.open(proxy)
                await c.send(f"CONNECT {ECHO_HOST}:443 HTTP/1.1\r\nProxy-Authorization: {scheme} {TOKEN}\r\n\r\n".encode())
                assert (await c.head())[0] == status, scheme
                await c.close()
            assert SECRET not in log.text and TOKEN not in log.text and log.tracebacks == []

    run(scenario())


def test_the_credential_check_compares_every_user_whatever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit: the same number of constant-time comparisons whether the first user matches,
    the last one, or none, so timing does not tell which user names exist."""
    calls: list[int] = []
    original = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return original(a, b)

    monkeypatch.setattr(auth_mod.hmac, "compare_digest", counting)
    users = {f"user{i}": f"pw{i}" for i in range(6)}
    auth = BasicAuth(users)
    counts = {}
    for label, user, password in (
        ("first user, right password", "user0", "pw0"),
        ("last user, right password", "user5", "pw5"),
        ("first user, wrong password", "user0", "nope"),
        ("unknown user", "mallory", "pw0"),
    ):
        calls.clear()
        result = auth.verify("Basic " + b64(f"{user}:{password}".encode()))
        assert result.ok == ("right" in label)
        counts[label] = len(calls)
    assert len(set(counts.values())) == 1, counts
    assert next(iter(counts.values())) >= len(users)


def _run_with_credentials() -> ScenarioRun:
    """A scenario run whose transcript, settings and target all carry the secret."""
    scenario = Scenario(
        id="auth-leak-check",
        title="Basic auth through a corporate proxy",
        guide_section="Proxy",
        lesson="The meter sends Basic credentials. They must not be copied into reports.",
        remedy="",
        path=None,
        proxy=ProxySpec(users={USER: SECRET}),
        device=DeviceSpec(username=USER, password=SECRET),
        cloud=CloudSpec(),
        expect=Expectation(),
    )
    evidence = Evidence(
        transcript=[
            "> CONNECT cometservp1.pb.com:443 HTTP/1.1",
            f"> Proxy-Authorization: Basic {TOKEN}",
            f"> proxy-authorization: basic {TOKEN}",
            f"> Proxy-Authorization:Basic {TOKEN}",
            f"> Authorization: Basic {TOKEN}",
            f"> Proxy-Authorization: Basic {b64(b'meter:' + SECRET.encode() + b'\xff')}",  # not UTF-8
            f"> Proxy-Authorization: Bearer {SECRET}",
            "< HTTP/1.1 407 Proxy Authentication Required",
            '< Proxy-Authenticate: Basic realm="corp"',
        ],
        connect_status=407,
        connect_reason="Proxy Authentication Required",
        connect_headers=[("Proxy-Authenticate", 'Basic realm="corp"')],
        auth_schemes=["Basic"],
    )
    results = [
        Result("auth-leak-check", "funds", "https://cometservp1.pb.com/", Outcome.AUTH_REQUIRED,
               "proxy answered 407 to Basic credentials for user 'meter'", evidence, 0.05),
    ]  # fmt: skip
    run_ = ScenarioRun(scenario, f"http://{USER}:{SECRET}@proxy.corp.test:8080")
    run_.results = results
    run_.observed = service_outcomes(results)
    run_.expected = {"funds": (Outcome.PASS,)}
    return run_


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_report_format_repeats_a_password_or_a_basic_token(fmt: str) -> None:
    text = render([_run_with_credentials()], fmt)
    assert "407" in text  # negative control: the evidence itself is there
    leaks = [leak for leak in (SECRET, TOKEN) if leak in text]
    assert leaks == [], f"{fmt} report repeats {leaks}"


def test_the_proxy_logger_never_sees_the_secret_even_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with proxy_to_echo(ProxyConfig(users={USER: SECRET})) as proxy:
            for value in (f"Basic {TOKEN}", f"Basic {TOKEN[:-2]}", f"basic {TOKEN}x", f"Digest {SECRET}"):
                c = await Raw.open(proxy)
                await c.send(f"CONNECT {ECHO_HOST}:443 HTTP/1.1\r\nProxy-Authorization: {value}\r\n\r\n".encode())
                await c.head()
                await c.close()

    with caplog.at_level(logging.DEBUG):  # every logger, not only proxy_lab.proxy
        run(scenario())
    assert "tunnel" in caplog.text
    assert SECRET not in caplog.text and TOKEN not in caplog.text
