"""The console WebSocket, a plain ASGI endpoint (`/vps/<ctid>/console/ws/`) next to Django's HTTP app.

The browser opens it from the console page and sends its ticket as the first message. The endpoint takes
the ticket (once), checks that the signed-in session's user, the VPS and the user's right to it still
match, logs the session start, and hands the signed ticket to the node's relay through Redis. From then on
it copies browser input, resizes and keepalives into the session's `in` stream and the `out` stream to
the browser, one entry at a time (it holds at most one read batch; the relay bounds the rest).

Browser → panel: the ticket message `{"ticket", "cols", "rows"}` (text), then input as binary frames and
`{"resize": [cols, rows]}` as text. Panel → browser: output as binary frames; `{"open": mode}`,
`{"error": text}` and `{"closed": reason}` as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
from http.cookies import SimpleCookie
from importlib import import_module
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http.request import validate_host
from django.utils import timezone

from panel.core.audit.services import change_context
from panel.vps.console import tickets
from panel.vps.console.models import ConsoleSession
from panel.vps.models import VPS
from worker import protocol

log = logging.getLogger("ctpanel.console")

PATH = re.compile(r"^/vps/(?P<ctid>\d+)/console/ws/$")
HELLO_SECONDS = 10  # for the browser's ticket message and for the relay's answer
CLOSE_REFUSED = 4403
CLOSE_ENDED = 4000

Scope = dict[str, Any]


def matches(scope: Scope) -> bool:
    return scope["type"] == "websocket" and PATH.match(scope["path"]) is not None


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name), "")


def same_origin(scope: Scope) -> bool:
    """Browsers send Origin on WebSocket requests; only our own pages may open a console."""
    origin, host = urlsplit(_header(scope, b"origin")).netloc, _header(scope, b"host")
    hostname = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    return bool(origin) and origin == host and validate_host(hostname, settings.ALLOWED_HOSTS)


def session_user(scope: Scope) -> Any:
    """The user of the Django session whose cookie came with the request (AnonymousUser without one)."""
    cookie = SimpleCookie(_header(scope, b"cookie"))
    morsel = cookie.get(settings.SESSION_COOKIE_NAME)
    store = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value if morsel else None)
    return get_user(SimpleNamespace(session=store))


def start_session(user: Any, ctid: int, issued: tickets.Issued, remote: str | None) -> ConsoleSession:
    vps = VPS.objects.select_related("node").get(ctid=ctid)
    tickets.check_access(user, vps)
    with transaction.atomic(), change_context(source="web", user=user):  # the row and its audit entry together
        return ConsoleSession.objects.create(vps=vps, user=user, mode=issued.ticket.mode,
                                             ticket_id=issued.ticket.ticket_id, remote_addr=remote)


def end_session(session: ConsoleSession, user: Any, reason: str, bytes_in: int, bytes_out: int) -> None:
    session.ended, session.end_reason = timezone.now(), reason[:200]
    session.bytes_in, session.bytes_out = bytes_in, bytes_out
    with transaction.atomic(), change_context(source="web", user=user):
        session.save()


class Bridge:
    """One browser WebSocket ↔ one relay session."""

    def __init__(self, receive: Any, send: Any, r: aioredis.Redis, session: str) -> None:
        self.receive, self.send, self.r = receive, send, r
        self.in_key, self.out_key = protocol.console_stream_keys(session)
        self.bytes_in = self.bytes_out = 0
        self.browser_gone = False

    async def text(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.send", "text": json.dumps(message)})

    async def to_relay(self, fields: dict[str, Any]) -> None:
        await self.r.xadd(self.in_key, fields, maxlen=4 * protocol.CONSOLE_BACKLOG)
        await self.r.expire(self.in_key, 60)

    async def relay_answer(self) -> dict[bytes, bytes] | None:
        reply = await self.r.xread({self.out_key: "0"}, count=1, block=HELLO_SECONDS * 1000)
        if not reply:
            return None
        entry_id, fields = reply[0][1][0]
        await self.r.xdel(self.out_key, entry_id)
        return fields

    async def from_browser(self) -> str:
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                self.browser_gone = True
                return "closed by the browser"
            data = message.get("bytes")
            if data:
                self.bytes_in += len(data)
                await self.to_relay({"d": data[: protocol.CONSOLE_INPUT_MAX]})
                continue
            try:
                cols, rows = protocol.console_size(*json.loads(message.get("text") or "{}")["resize"])
            except (ValueError, KeyError, TypeError, protocol.ProtocolError):
                continue  # not a resize: ignored
            await self.to_relay({"r": f"{cols}x{rows}"})

    async def to_browser(self) -> str:
        last, heard, said = "0", time.monotonic(), time.monotonic()
        while True:
            reply = await self.r.xread({self.out_key: last}, count=16, block=1000)
            now = time.monotonic()
            for _key, entries in reply or ():
                heard = now
                for entry_id, fields in entries:
                    last = entry_id
                    if b"d" in fields:
                        self.bytes_out += len(fields[b"d"])
                        try:
                            await self.send({"type": "websocket.send", "bytes": fields[b"d"]})
                        except OSError:  # uvicorn's ClientDisconnected: gone before its disconnect message
                            self.browser_gone = True
                            return "closed by the browser"
                    elif b"x" in fields:
                        return fields[b"x"].decode(errors="replace")
                await self.r.xdel(self.out_key, *[entry_id for entry_id, _ in entries])
            if now - heard > protocol.CONSOLE_IDLE_SECONDS:
                return "the node's console relay went away"
            if now - said > protocol.CONSOLE_KEEPALIVE_SECONDS:
                await self.to_relay({"k": "1"})
                said = now

    async def run(self) -> str:
        tasks = [asyncio.ensure_future(self.from_browser()), asyncio.ensure_future(self.to_browser())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        reason = next(iter(done)).result()
        await self.to_relay({"x": reason})
        await self.r.expire(self.out_key, 60)
        return reason


async def _hello(receive: Any) -> dict[str, Any]:
    message = await asyncio.wait_for(receive(), HELLO_SECONDS)
    if message["type"] != "websocket.receive":
        raise ConnectionError("the browser went away")
    hello = json.loads(message.get("text") or "{}")
    if not isinstance(hello, dict):
        raise ValueError("not an object")
    return hello


async def console_socket(scope: Scope, receive: Any, send: Any) -> None:
    """The ASGI application of the console WebSocket."""
    if (await receive())["type"] != "websocket.connect":
        return
    ctid = int(PATH.match(scope["path"])["ctid"])
    user = await sync_to_async(session_user)(scope)
    if not same_origin(scope) or not user.is_authenticated:
        await send({"type": "websocket.close", "code": CLOSE_REFUSED})  # before accept: HTTP 403
        return
    await send({"type": "websocket.accept"})
    r = aioredis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        await _serve(scope, receive, send, r, user, ctid)
    finally:
        await r.aclose()


async def _serve(scope: Scope, receive: Any, send: Any, r: aioredis.Redis, user: Any, ctid: int) -> None:
    async def refuse(text: str) -> None:
        log.info("console of CT %s refused for %s: %s", ctid, user.get_username(), text)
        await send({"type": "websocket.send", "text": json.dumps({"error": text})})
        await send({"type": "websocket.close", "code": CLOSE_REFUSED})

    try:
        hello = await _hello(receive)
        issued = tickets.parse(await r.getdel(tickets.redis_key(hello.get("ticket"))), user_id=user.pk, ctid=ctid)
        cols, rows = protocol.console_size(hello.get("cols"), hello.get("rows"))
        client = scope.get("client") or (None,)
        session = await sync_to_async(start_session)(user, ctid, issued, client[0])
    except (tickets.TicketRefused, PermissionDenied, ValidationError, VPS.DoesNotExist) as exc:
        await refuse(" ".join(getattr(exc, "messages", [])) or str(exc) or "refused")
        return
    except (ValueError, TypeError, protocol.ProtocolError, TimeoutError, ConnectionError):
        await refuse("The browser did not send a console ticket.")
        return
    sid = secrets.token_urlsafe(24)
    bridge = Bridge(receive, send, r, sid)
    request = protocol.ConsoleOpen(session=sid, ticket=issued.ticket.to_dict(), signature=issued.signature,
                                   cols=cols, rows=rows)
    open_key = protocol.console_open_key(issued.ticket.node)
    await r.rpush(open_key, json.dumps(request.to_dict()))
    await r.expire(open_key, 60)
    answer = await bridge.relay_answer()
    if answer is None or b"o" not in answer:
        reason = answer[b"e"].decode(errors="replace") if answer and b"e" in answer else (
            "The node's console relay did not answer; ask your provider.")
        await sync_to_async(end_session)(session, user, f"refused by the node: {reason}", 0, 0)
        await refuse(reason)
        return
    await bridge.text({"open": issued.ticket.mode})
    try:
        reason = await bridge.run()
    except Exception as exc:  # Redis gone, a bug: the session still ends in the log
        log.exception("console session %s of CT %s failed", sid, ctid)
        reason = f"panel error: {type(exc).__name__}"
    await sync_to_async(end_session)(session, user, reason, bridge.bytes_in, bridge.bytes_out)
    if not bridge.browser_gone:
        with contextlib.suppress(OSError):
            await bridge.text({"closed": reason})
            await send({"type": "websocket.close", "code": CLOSE_ENDED})
