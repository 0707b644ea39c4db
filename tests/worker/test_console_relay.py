"""The console relay with real Redis and real ptys: this test plays the panel's side of the streams.

The VPS side is a host command on a pty of the test's own (`PtyEndpoint`, the class the relay uses for a
login shell); the browser tier covers real VPSs through the supervisor.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from tests.services import wait_for
from worker import protocol
from worker.console_relay import service
from worker.console_relay.endpoints import PtyEndpoint, open_endpoint
from worker.console_relay.service import Relay
from worker.keys import generate

pytestmark = pytest.mark.integration

MiB = 2**20


@pytest.fixture(scope="module")
def panel_key():
    return generate("panel")


def host_pty(argv: list[str], policy: str) -> tuple[PtyEndpoint, subprocess.Popen]:
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)

    def close() -> None:
        proc.kill()
        proc.wait()
        os.close(master)

    return PtyEndpoint(master, close, policy), proc


class Panel:
    """The panel's half: signs tickets, pushes session requests, reads and writes the streams."""

    def __init__(self, r: redis.Redis, node: str, key_pem: bytes) -> None:
        self.r, self.node = r, node
        self.key = serialization.load_pem_private_key(key_pem, password=None)

    def request(self, ctid: int = 101, mode: str = "console", cols: int = 80, rows: int = 24, **changes):
        ticket = protocol.ConsoleTicket(**{
            "ticket_id": secrets.token_urlsafe(24), "user_id": 7, "username": "carol", "ctid": ctid,
            "node": self.node, "mode": mode, "expires": time.time() + protocol.CONSOLE_TICKET_SECONDS, **changes})
        signature = self.key.sign(ticket.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())
        return protocol.ConsoleOpen(session=secrets.token_urlsafe(24), ticket=ticket.to_dict(),
                                    signature=base64.b64encode(signature).decode(), cols=cols, rows=rows)

    def open(self, request: protocol.ConsoleOpen) -> dict[bytes, bytes]:
        """The relay's first answer: {"o": mode} or {"e": why}."""
        self.r.rpush(protocol.console_open_key(self.node), json.dumps(request.to_dict()))
        _, out_key = protocol.console_stream_keys(request.session)
        reply = self.r.xread({out_key: "0"}, count=1, block=10000)
        assert reply, "the relay did not answer"
        entry_id, fields = reply[0][1][0]
        self.r.xdel(out_key, entry_id)
        return fields

    def send(self, session: str, fields: dict) -> None:
        self.r.xadd(protocol.console_stream_keys(session)[0], fields)

    def wait(self, session: str, predicate, timeout: float, what: str) -> None:
        """Poll `predicate()` without taking output, sending keepalives as the panel does meanwhile."""
        def check():
            self.send(session, {"k": "1"})
            return predicate()

        wait_for(check, timeout, what)

    def drain(self, session: str, *, until: bytes | None = None, timeout: float = 30,
              keepalive: bool = True) -> tuple[bytes, str | None]:
        """Take output (as the panel does: read, then delete) until `until` shows up or the session ends."""
        out_key = protocol.console_stream_keys(session)[1]
        data, last, deadline = bytearray(), "0", time.monotonic() + timeout
        while time.monotonic() < deadline:
            if keepalive:
                self.send(session, {"k": "1"})
            for _key, entries in self.r.xread({out_key: last}, count=64, block=500) or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if b"x" in fields:
                        return bytes(data), fields[b"x"].decode()
                    data += fields.get(b"d", b"")
                self.r.xdel(out_key, *[entry_id for entry_id, _ in entries])
            if until is not None and until in data:
                return bytes(data), None
        raise AssertionError(f"no {until!r} and no end within {timeout} s; got {bytes(data[-200:])!r}")


@pytest.fixture
def relay(panel_key, tmp_path):
    r = redis.Redis.from_url(os.environ["CTPANEL_BROKER_URL"])
    node = f"relay-{os.getpid()}"
    rt = Runtime(KernelNodeConfig(node=node, state_root=str(tmp_path), cgroup_prefix=f"ctpanel-relay-{os.getpid()}"))
    hosts: dict[int, tuple[PtyEndpoint, subprocess.Popen]] = {}

    def open_ep(ctid: int, mode: str):
        return hosts[ctid][0] if ctid in hosts else open_endpoint(rt, str(tmp_path), ctid, mode)

    keys = [x509.load_pem_x509_certificate(panel_key[1]).public_key()]
    relay = Relay(r, node, keys, open_ep)
    thread = threading.Thread(target=relay.serve, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(relay=relay, r=r, hosts=hosts, panel=Panel(r, node, panel_key[0]))
    finally:
        relay.stopping.set()
        thread.join(timeout=10)
        relay.stop()
        for _endpoint, proc in hosts.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        r.close()


def test_input_resize_and_the_end_from_the_panel(relay):
    relay.hosts[101] = host_pty(["sh", "-c", "read a; stty size; read b; stty size; exec sleep 60"], "pause")
    request = relay.panel.request(cols=100, rows=30)
    assert relay.panel.open(request) == {b"o": b"console"}
    relay.panel.send(request.session, {"d": b"\n"})
    relay.panel.drain(request.session, until=b"30 100")  # the size the browser had when it opened
    relay.panel.send(request.session, {"r": "120x50"})
    relay.panel.send(request.session, {"d": b"\n"})
    relay.panel.drain(request.session, until=b"50 120")
    relay.panel.send(request.session, {"x": "closed by the browser"})
    _, reason = relay.panel.drain(request.session)
    assert reason == "closed by the browser"
    assert relay.hosts[101][1].wait(timeout=10) is not None  # the session's process was ended
    wait_for(lambda: not relay.relay.sessions, 10, "the relay to forget the session")


def test_refused_requests_get_a_reason(relay):
    panel = relay.panel
    expired = panel.request(expires=time.time() - 1)
    assert b"expired" in panel.open(expired)[b"e"]
    elsewhere = panel.request(node="other-node")
    assert b"for node 'other-node'" in panel.open(elsewhere)[b"e"]
    missing = panel.request(ctid=4242)  # no such VPS on this node (the real endpoint lookup)
    assert b"does not exist on this node" in panel.open(missing)[b"e"]


def test_a_replayed_ticket_is_refused(relay):
    relay.hosts[101] = host_pty(["sleep", "60"], "pause")
    first = relay.panel.request()
    assert b"o" in relay.panel.open(first)
    replay = protocol.ConsoleOpen(**{**first.to_dict(), "session": secrets.token_urlsafe(24)})
    assert relay.panel.open(replay) == {b"e": b"ticket already used"}


def test_a_console_flood_is_dropped_beyond_the_backlog_and_said_so(relay):
    size = 64 * MiB
    relay.hosts[101] = host_pty(["head", "-c", str(size), "/dev/zero"], "drop")
    request = relay.panel.request()
    out_key = protocol.console_stream_keys(request.session)[1]
    rss = _rss()
    assert b"o" in relay.panel.open(request)
    # Nobody reads: the relay keeps reading the VPS (a console must not stall) and drops what does not fit.
    relay.panel.wait(request.session,
                     lambda: relay.r.xrevrange(out_key, count=1) and b"x" in relay.r.xrevrange(out_key, count=1)[0][1],
                     120, "the flood to end")
    entries = relay.r.xrange(out_key)
    assert len(entries) <= service.MAXLEN
    kept = sum(len(fields.get(b"d", b"")) for _, fields in entries if fields.get(b"d", b"").startswith(b"\0"))
    assert kept <= protocol.CONSOLE_BACKLOG * protocol.CONSOLE_CHUNK
    notice = next(fields[b"d"] for _, fields in entries if b"output dropped" in fields.get(b"d", b""))
    dropped = int(re.search(rb"(\d+) bytes of output dropped", notice).group(1))
    assert kept + dropped == size  # every byte is either shown or counted as dropped
    assert _rss() - rss < 32 * MiB


def test_a_shell_flood_pauses_the_writer_and_loses_nothing(relay):
    size = 8 * MiB
    relay.hosts[101] = host_pty(["head", "-c", str(size), "/dev/zero"], "pause")
    request = relay.panel.request(mode="shell")
    out_key = protocol.console_stream_keys(request.session)[1]
    assert b"o" in relay.panel.open(request)
    relay.panel.wait(request.session, lambda: relay.r.xlen(out_key) >= protocol.CONSOLE_BACKLOG, 30,
                     "the backlog to fill")
    assert relay.r.xlen(out_key) <= protocol.CONSOLE_BACKLOG + 1
    assert relay.hosts[101][1].poll() is None  # blocked writing: 8 MiB do not fit in the backlog
    data, reason = relay.panel.drain(request.session, timeout=120)
    assert reason == "the VPS side closed"
    assert len(data) == size and b"dropped" not in data


def test_a_session_whose_panel_side_went_away_ends(relay, monkeypatch):
    monkeypatch.setattr(protocol, "CONSOLE_IDLE_SECONDS", 2)
    monkeypatch.setattr(protocol, "CONSOLE_KEEPALIVE_SECONDS", 1)
    relay.hosts[101] = host_pty(["sleep", "60"], "pause")
    request = relay.panel.request()
    assert b"o" in relay.panel.open(request)
    _, reason = relay.panel.drain(request.session, timeout=30, keepalive=False)  # reads, says nothing
    assert reason == "the panel side went away"
    assert relay.hosts[101][1].wait(timeout=10) is not None


def _rss() -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(r"VmRSS:\s+(\d+) kB", fh.read()).group(1)) * 1024


@pytest.mark.parametrize(("size", "why"), [("9999x1", "console size"), ("wide", "invalid literal")])
def test_a_malformed_resize_ends_the_session_plainly(relay, size, why):
    relay.hosts[101] = host_pty(["sleep", "60"], "pause")
    request = relay.panel.request()
    assert b"o" in relay.panel.open(request)
    relay.panel.send(request.session, {"r": size})
    _, reason = relay.panel.drain(request.session)
    assert reason.startswith(f"relay error: {why}")
    assert relay.hosts[101][1].wait(timeout=10) is not None
