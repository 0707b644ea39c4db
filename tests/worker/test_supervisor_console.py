"""Pure logic of the supervisor: the console ring and attach fan-out, the protocol's lines."""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

import pytest

from kernel.errors import InvalidArgument
from worker.supervisor import protocol
from worker.supervisor.console import CLIENT_BACKLOG, Console


def test_the_ring_keeps_only_the_newest_bytes():
    console = Console(101, ring_size=8)
    console.feed(b"abcdef")
    console.feed(b"ghijkl")
    assert bytes(console.ring) == b"efghijkl"


def test_attach_gets_the_buffer_then_live_output():
    console = Console(101, ring_size=1024)
    console.feed(b"before ")
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sub, buffered = console.subscribe(ours)
        console.feed(b"after")
        assert buffered == b"before "
        assert sub.chunks.get_nowait() == b"after"
        console.unsubscribe(sub)
        assert sub.chunks.get_nowait() is None  # the pump ends
        console.feed(b"more")
        assert sub.chunks.empty()


def test_a_client_that_does_not_read_is_dropped_not_buffered_without_end():
    console = Console(101, ring_size=16)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        sub, _ = console.subscribe(ours)
        for _ in range(CLIENT_BACKLOG + 10):
            console.feed(b"x" * 4096)
        assert sub not in console.subscribers
        assert sub.chunks.qsize() <= CLIENT_BACKLOG
        assert len(console.ring) == 16


def test_protocol_lines_round_trip_and_refuse_garbage():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(protocol.encode({"v": 1, "op": "list"}) + b"stream bytes")
        assert protocol.decode(protocol.read_line(ours)) == {"v": 1, "op": "list"}
        assert ours.recv(100) == b"stream bytes"  # nothing after the line was consumed
    with pytest.raises(InvalidArgument):
        protocol.decode(b"[1, 2]\n")
    with pytest.raises(InvalidArgument):
        protocol.decode(b"{nope\n")


def test_the_socket_lives_in_the_root_only_run_directory():
    assert protocol.socket_path("/var/lib/ctpanel/node/n1") == "/var/lib/ctpanel/node/n1/run/supervisor.sock"


def test_resize_sets_the_window_size_of_the_console_pty():
    master, slave = os.openpty()
    console = Console(101, ring_size=1024)
    console.set_master(master)
    try:
        console.resize(132, 43)
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert (rows, cols) == (43, 132)  # what `stty size` reads inside the VPS
    finally:
        console.close()
        os.close(slave)
