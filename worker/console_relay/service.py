"""The relay loop: session requests from the node's Redis list, one session per browser console.

Each session has two threads: VPS → browser (output into the session's `out` stream) and browser → VPS
(input, resizes and the end from its `in` stream). Memory stays bounded whatever the VPS writes: the relay
holds one chunk per session, and the panel side has at most `CONSOLE_BACKLOG` entries of `CONSOLE_CHUNK`
bytes not yet taken; beyond that a console drops output (and says how much) and a shell stops being read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from cryptography.hazmat.primitives.asymmetric import rsa

from kernel.errors import KernelError
from worker import protocol
from worker.console_relay.endpoints import Endpoint
from worker.console_relay.tickets import TicketRefused, verify

log = logging.getLogger("ctpanel.console_relay")

MAX_SESSIONS = 32
KEY_TTL = 60  # seconds a session's streams outlive their last write
USED_TTL = 2 * protocol.CONSOLE_TICKET_SECONDS + 10
MAXLEN = 2 * protocol.CONSOLE_BACKLOG  # hard cap of the out stream (control entries beyond the backlog)


def used_key(node: str, ticket_id: str) -> str:
    return f"ctpanel:console:{node}:used:{ticket_id}"


class Session:
    def __init__(self, relay: Relay, session: str, ticket: protocol.ConsoleTicket, endpoint: Endpoint) -> None:
        self.relay = relay
        self.r = relay.r
        self.id = session
        self.ticket = ticket
        self.endpoint = endpoint
        self.in_key, self.out_key = protocol.console_stream_keys(session)
        self.done = threading.Event()
        self.reason = ""
        self.dropped = 0
        self.heard = time.monotonic()
        self.said = time.monotonic()
        self.threads: list[threading.Thread] = []

    def send(self, fields: dict[str, Any]) -> None:
        self.r.xadd(self.out_key, fields, maxlen=MAXLEN, approximate=False)
        self.r.expire(self.out_key, KEY_TTL)
        self.said = time.monotonic()

    def end(self, reason: str) -> None:
        if self.done.is_set():
            return
        self.reason = reason
        self.done.set()
        with contextlib.suppress(OSError, KernelError):
            self.endpoint.close()
        with contextlib.suppress(redis.RedisError):
            self._dropped_notice()
            self.send({"x": reason})
            self.r.expire(self.in_key, KEY_TTL)

    def backlog(self) -> int:
        return int(self.r.xlen(self.out_key))

    def pump_out(self) -> None:
        """VPS → browser, with the flow-control policy of the endpoint."""
        try:
            while not self.done.is_set():
                if self.endpoint.policy == "pause" and self.backlog() >= protocol.CONSOLE_BACKLOG:
                    self.done.wait(0.05)  # not read: the shell's output blocks in the VPS
                    self._keepalive()
                    continue
                data = self.endpoint.read(protocol.CONSOLE_CHUNK, 1.0)
                if data is None:
                    self._keepalive()
                    continue
                if not data:
                    self.end("the VPS side closed")
                    return
                self._output(data)
        except (redis.RedisError, OSError, KernelError) as exc:
            self.end(f"relay error: {exc}")
        finally:
            self.relay.forget(self)

    def _output(self, data: bytes) -> None:
        backlog = self.backlog()
        if backlog >= protocol.CONSOLE_BACKLOG:
            self.dropped += len(data)
            return
        if self.dropped and backlog < protocol.CONSOLE_BACKLOG // 2:
            self._dropped_notice()
        if not self.dropped:
            self.send({"d": data})
        else:
            self.dropped += len(data)

    def _dropped_notice(self) -> None:
        if self.dropped:
            self.send({"d": f"\r\n[ctpanel: {self.dropped} bytes of output dropped: the browser fell behind]\r\n"})
            self.dropped = 0

    def _keepalive(self) -> None:
        now = time.monotonic()
        if now - self.heard > protocol.CONSOLE_IDLE_SECONDS:
            self.end("the panel side went away")
        elif now - self.said > protocol.CONSOLE_KEEPALIVE_SECONDS:
            self.send({"k": "1"})

    def pump_in(self) -> None:
        """Browser → VPS: input bytes, resizes, keepalives and the end."""
        last = "0"
        try:
            while not self.done.is_set():
                reply = self.r.xread({self.in_key: last}, count=32, block=1000)
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        self.heard = time.monotonic()
                        self._input(fields)
                        if self.done.is_set():
                            return
                if time.monotonic() - self.heard > protocol.CONSOLE_IDLE_SECONDS:
                    self.end("the panel side went away")
        except (redis.RedisError, OSError, KernelError, protocol.ProtocolError, ValueError) as exc:
            self.end(f"relay error: {exc}")

    def _input(self, fields: dict[bytes, bytes]) -> None:
        if b"d" in fields:
            self.endpoint.write(fields[b"d"][: protocol.CONSOLE_INPUT_MAX])
        elif b"r" in fields:
            cols, _, rows = fields[b"r"].decode().partition("x")
            self.endpoint.resize(*protocol.console_size(int(cols), int(rows)))
        elif b"x" in fields:
            self.end(fields[b"x"].decode(errors="replace") or "closed by the browser")


class Relay:
    """Serves one node: `open_endpoint(ctid, mode)` gives the VPS side of a session."""

    def __init__(self, r: redis.Redis, node: str, keys: list[rsa.RSAPublicKey],
                 open_endpoint: Callable[[int, str], Endpoint]) -> None:
        self.r = r
        self.node = node
        self.keys = keys
        self.open_endpoint = open_endpoint
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def serve(self) -> None:
        """Pop and open session requests until `stop()`."""
        key = protocol.console_open_key(self.node)
        while not self.stopping.is_set():
            try:
                item = self.r.blpop([key], timeout=1)
            except redis.RedisError as exc:
                log.warning("redis: %s", exc)
                self.stopping.wait(1.0)
                continue
            if item is not None:
                self.open(item[1])

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            sessions = list(self.sessions.values())
        for session in sessions:
            session.end("the console relay stopped")
        for session in sessions:
            for thread in session.threads:
                thread.join(timeout=5)

    def open(self, raw: bytes) -> Session | None:
        try:
            request = protocol.ConsoleOpen.from_dict(_json(raw))
            _, out_key = protocol.console_stream_keys(request.session)
        except protocol.ProtocolError as exc:
            log.warning("malformed console request refused: %s", exc)
            return None
        try:
            ticket = verify(request, self.keys, node=self.node, claim=self._claim)
            cols, rows = protocol.console_size(request.cols, request.rows)
            with self.lock:
                if len(self.sessions) >= MAX_SESSIONS:
                    raise TicketRefused(f"this node serves at most {MAX_SESSIONS} consoles at once")
            endpoint = self.open_endpoint(ticket.ctid, ticket.mode)
        except (TicketRefused, KernelError, protocol.ProtocolError) as exc:
            log.warning("console session %s refused: %s", request.session, exc)
            self.r.xadd(out_key, {"e": str(exc)}, maxlen=MAXLEN)
            self.r.expire(out_key, KEY_TTL)
            return None
        session = Session(self, request.session, ticket, endpoint)
        with contextlib.suppress(OSError, KernelError):
            endpoint.resize(cols, rows)
        with self.lock:
            self.sessions[session.id] = session
        log.info("console session %s: CT %s %s for %s", session.id, ticket.ctid, ticket.mode, ticket.username)
        session.send({"o": ticket.mode})
        session.threads = [threading.Thread(target=session.pump_out, name=f"out-{session.id}", daemon=True),
                           threading.Thread(target=session.pump_in, name=f"in-{session.id}", daemon=True)]
        for thread in session.threads:
            thread.start()
        return session

    def forget(self, session: Session) -> None:
        session.done.wait()
        with self.lock:
            self.sessions.pop(session.id, None)
        log.info("console session %s ended: %s", session.id, session.reason)

    def _claim(self, ticket_id: str) -> bool:
        return bool(self.r.set(used_key(self.node, ticket_id), b"1", nx=True, ex=USED_TTL))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise protocol.ProtocolError(f"not JSON: {exc}") from None
