"""socks_only: the listener is a SOCKS5 server and nothing else (the guide: "Socket Secure (SOCKS) protocol is not supported.")."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from proxy_lab.proxy.events import Refusal
from proxy_lab.proxy.faults.base import ClientConn, Fault, doc
from proxy_lab.proxy.socks import (
    Command,
    Method,
    Reply,
    SocksProtocolError,
    choose_method,
    method_selection,
    parse_greeting,
    parse_request,
    parse_userpass,
    reply,
    userpass_status,
)

log = logging.getLogger("proxy_lab.proxy")


def reply_for(refusal: Refusal) -> bytes:
    """The SOCKS5 reply standing for the refusal the HTTP path would have sent (RFC 1928 §6 codes)."""
    squid = refusal.get("X-Squid-Error") or ""
    if squid.startswith("ERR_DNS_FAIL"):
        code = Reply.HOST_UNREACHABLE
    elif squid.startswith("ERR_CONNECT_FAIL"):
        code = Reply.TTL_EXPIRED if refusal.status == 504 else Reply.CONNECTION_REFUSED
    elif refusal.status in (403, 405, 407):
        code = Reply.NOT_ALLOWED
    else:
        code = Reply.GENERAL_FAILURE
    return reply(code)


@dataclass(kw_only=True)
class SocksOnly(Fault, name="socks_only"):
    """Makes the listener a SOCKS5 server only: an HTTP CONNECT gets `05 FF` and a close (MicroSocks' answer)."""

    handshake_timeout_s: float = field(default=10.0, metadata=doc("time allowed for each handshake message", "s"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.handshake_timeout_s <= 300:
            raise ValueError(f"handshake_timeout_s: {self.handshake_timeout_s} outside (0, 300]")
        if self.hosts or self.ports:
            raise ValueError("hosts/ports: the whole listener speaks SOCKS5; it cannot be scoped to targets")

    async def handle_client(self, conn: ClientConn) -> bool:
        client = f"{conn.peer[0]}:{conn.peer[1]}"
        try:
            greeting = await self._read(conn, parse_greeting)
            if greeting is None:
                return True
            check = _credential_check(conn)
            user: str | None = None
            method = choose_method(greeting, auth_required=check is not None)
            conn.write(method_selection(method))
            if method == Method.NO_ACCEPTABLE:
                log.info("socks_only: %s offered methods %s; none acceptable", client, list(greeting.methods))
                await conn.close()
                return True
            if check is not None:
                creds = await self._read(conn, parse_userpass)
                if creds is None:
                    return True
                result = check(creds.user, creds.password)
                conn.write(userpass_status(result.ok))
                if not result.ok:
                    log.info("socks_only: %s failed username/password authentication: %s", client, result.why)
                    await conn.close()
                    return True
                user = result.user
            request = await self._read(conn, parse_request)
            if request is None:
                return True
            if request.command != Command.CONNECT:
                conn.write(reply(Reply.COMMAND_NOT_SUPPORTED))
                await conn.close()
                return True
        except SocksProtocolError as exc:
            log.info("socks_only: %s: %s; answered %s and closed", client, exc, exc.answer.hex(" ") or "nothing")
            conn.write(exc.answer)
            await conn.close()
            return True
        except TimeoutError:
            await conn.close(linger_s=0.1)
            return True
        ctx = conn.new_ctx(request.host, request.port)
        ctx.notes["socks"] = f"SOCKS5 CONNECT {request.authority} ({request.address_type.name})"
        ctx.user = user
        await conn.tunnel(ctx, lambda refusal: reply(Reply.SUCCEEDED) if refusal is None else reply_for(refusal))
        return True

    async def _read(self, conn: ClientConn, parse: Any) -> Any:
        """The next message parsed from the connection, or None when the client left first."""
        while True:
            parsed = parse(conn.buffered())
            if parsed is not None:
                event, size = parsed
                conn.consume(size)
                return event
            if not await conn.read_more(self.handshake_timeout_s):
                await conn.close(linger_s=0.1)
                return None


def _credential_check(conn: ClientConn) -> Any:
    """The proxy's user check when it has users (`check_credentials(user, password)` -> AuthResult), else None."""
    if getattr(conn, "auth_required", False) and callable(getattr(conn, "check_credentials", None)):
        return conn.check_credentials  # type: ignore[attr-defined]
    return None
