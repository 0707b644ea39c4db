"""The accounting tier on a real VPS: numpty, numflock, numothersock and numiptent grow by exactly
what the VPS holds (numfile and numtcpsock: test_enforcement.py).

The VPS's busybox has no flock(1) and no UDP in its nc, so the locks and the non-TCP sockets are
held by a helper process made a process of the VPS the way the tier sees it: moved into the VPS's
cgroups and into its network namespace. The ptys are opened by the VPS's own shell, from its devpts
and from a devpts it mounts itself (the bypass of numpty's `max=`, counted all the same); the nft
rules are added to the VPS's network namespace."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
from collections.abc import Iterator

import pytest

from kernel import syscalls as sc
from kernel.net.nft import Nft
from kernel.ubc import Limits, account
from tests.kernel.ubc.test_enforcement import BACKGROUND, _settled, poll, sh

pytestmark = pytest.mark.kernel


@pytest.fixture
def helpers() -> Iterator[list[int]]:
    """PIDs of helper processes, killed and reaped after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _hold_in_vps(runtime, ctid: int, directory: str, locks: int, udp: int, unix: int) -> int:
    """A process in the VPS's cgroups and network namespace holding `locks` locks (flock and POSIX
    alternately, each on its own file), `udp` UDP sockets and `unix` unix sockets; its PID once it holds them."""
    netns = os.open(f"/proc/{runtime.status(ctid).init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    ready, report = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            runtime.cgroups.attach(ctid, 0)
            sc.setns(netns, sc.CLONE_NEWNET)
            # Nothing of the test process's is held in the VPS: its sockets, its terminal.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, report)
            os.closerange(report + 1, 1 << 16)
            held: list[object] = []
            for i in range(locks):
                fh = open(os.path.join(directory, f"lock{i}"), "w")  # noqa: SIM115 - held until killed
                fcntl.flock(fh, fcntl.LOCK_EX) if i % 2 == 0 else fcntl.lockf(fh, fcntl.LOCK_EX)
                held.append(fh)
            held += [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(udp)]
            held += [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(unix)]
            os.write(report, b"ok")
            signal.pause()
            code = 0
        finally:
            os._exit(code)
    os.close(report)
    os.close(netns)
    try:
        assert os.read(ready, 2) == b"ok", "the helper did not take its locks and sockets"
    finally:
        os.close(ready)
    return pid


def test_accounting_rows_grow_by_what_the_vps_holds(limited_vps, runtime, helpers, tmp_path) -> None:
    ctid = limited_vps(Limits())
    _settled(runtime, ctid)
    before = account(runtime.cgroups, {ctid: Limits()})[ctid]

    # ptys: two from the VPS's devpts, two from a devpts the VPS mounts itself.
    sh(runtime, ctid, "mkdir -p /tmp/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /tmp/pts")
    sh(runtime, ctid, f"(exec 10<>/dev/ptmx 11<>/dev/ptmx 12<>/tmp/pts/ptmx 13<>/tmp/pts/ptmx; exec sleep 1000) "
                      f"{BACKGROUND}")
    helpers.append(_hold_in_vps(runtime, ctid, str(tmp_path), locks=3, udp=2, unix=1))
    Nft(f"/proc/{runtime.status(ctid).init_pid}/ns/net").batch(
        "add table inet acct\nadd chain inet acct c\n" + "add rule inet acct c counter\n" * 5)

    want = {"numpty": 4, "numflock": 3, "numothersock": 3, "numiptent": 5, "numtcpsock": 0}
    seen: dict[str, int] = {}

    def counted() -> bool:
        rows = account(runtime.cgroups, {ctid: Limits()})[ctid]
        seen.update({name: rows[name].held - before[name].held for name in want})
        return seen == want

    poll("the accounting rows grow by what the VPS holds", counted)
    rows = account(runtime.cgroups, {ctid: Limits(numpty=64)})[ctid]
    assert rows["numpty"].limit == 64 and rows["numflock"].failcnt == 0

    # Released again: the helper ends, the nft table goes.
    os.kill(helpers[0], signal.SIGKILL)
    Nft(f"/proc/{runtime.status(ctid).init_pid}/ns/net").batch("delete table inet acct\n")
    want = {"numpty": 4, "numflock": 0, "numothersock": 0, "numiptent": 0, "numtcpsock": 0}
    poll("the rows drop when the VPS lets go", counted)
