"""The in-VPS beancounter file: one small FUSE filesystem for the node, answering each reader
with its own VPS's table (OpenVZ format) at read time.

procfs cannot gain a `/proc/user_beancounters` entry, so the file is served
from a FUSE mount on the host (one for the node) holding a single read-only
file, `user_beancounters`; it is meant to be bind-mounted read-only into every
VPS at `IN_VPS_PATH`. The kernel tells the server the reader's PID (in the
server's PID namespace); the server maps it to a CTID through /proc/PID/cgroup
and answers that VPS's table only. A reader in no VPS gets the header alone.
The text is made once per open() so reads at any offset see one snapshot.

Speaks the FUSE wire protocol on /dev/fuse directly (a handful of opcodes; no
libfuse), so it needs nothing beyond the kernel's fuse module.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import struct
import threading
import time
from collections.abc import Callable

from kernel import cgroups
from kernel import syscalls as sc
from kernel.cgroups import CgroupDriver
from kernel.errors import KernelError
from kernel.ubc.counters import FastReader, Row
from kernel.ubc.views import user_beancounters

IN_VPS_PATH = "/run/ctpanel/user_beancounters"
FILE_NAME = "user_beancounters"
ROOT, FILE = 1, 2

_IN = struct.Struct("<IIQQIIIHH")
_OUT = struct.Struct("<IiQ")
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
_READ_IN = struct.Struct("<QQIIQII")
_LOOKUP, _FORGET, _GETATTR, _OPEN, _READ, _STATFS, _RELEASE = 1, 2, 3, 14, 15, 17, 18
_INIT, _OPENDIR, _READDIR, _RELEASEDIR, _INTERRUPT, _DESTROY, _BATCH_FORGET = 26, 27, 28, 29, 36, 38, 42
_NO_REPLY = {_FORGET, _BATCH_FORGET, _INTERRUPT}
_FOPEN_DIRECT_IO = 1
_BUFSIZE = (1 << 17) + 4096
_VALID = 86400  # seconds the kernel may cache names and attributes: they never change
WINDOW = 1.0  # seconds one VPS's table is reused for its readers (a sampling interval)
_SIZE = 1 << 20  # st_size: above any table; reads end at the real end (sendfile needs a size)


def ctid_of(pid: int, prefix: str) -> int | None:
    """The CTID whose cgroups hold `pid` (from /proc/PID/cgroup), or None."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii", errors="replace") as fh:
            return ctid_in(fh.read(), prefix)
    except OSError:
        return None


def ctid_in(text: str, prefix: str) -> int | None:
    """The CTID named by a /proc/PID/cgroup text (`N:ctrl:/<prefix>/<ctid>/...`), or None."""
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        parts = path.split("/")
        if len(parts) > 2 and parts[1] == prefix and parts[2].isdigit():
            return int(parts[2])
    return None


def _attr(node: int) -> bytes:
    mode = 0o040555 if node == ROOT else 0o100444
    size, links = (0, 2) if node == ROOT else (_SIZE, 1)
    return _ATTR.pack(node, size, 0, 0, 0, 0, 0, 0, 0, mode, links, 0, 0, 0, 4096, 0)


def _dirent(ino: int, off: int, name: bytes, kind: int) -> bytes:
    raw = struct.pack("<QQII", ino, off, len(name), kind) + name
    return raw + b"\0" * (-len(raw) % 8)


class BeancounterFS:
    """`text_for(pid)` returns the file's content for reader `pid` (see `ctid_of`)."""

    def __init__(self, mountpoint: str, text_for: Callable[[int], str]) -> None:
        self.mountpoint = mountpoint
        self.text_for = text_for
        self._fd = -1
        self._open: dict[int, bytes] = {}
        self._next_fh = 1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Mount and serve from a daemon thread until `stop()`."""
        self._mount()
        self._thread = threading.Thread(target=self._serve, name="ubc-fuse", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Mount and serve in this thread until unmounted (the node's server process)."""
        self._mount()
        self._serve()

    def _mount(self) -> None:
        self._fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        try:
            sc.mount("ctpanel-ubc", self.mountpoint, "fuse", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                     f"fd={self._fd},rootmode=40000,user_id=0,group_id=0,allow_other")
        except BaseException:
            os.close(self._fd)
            raise

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            sc.umount2(self.mountpoint, sc.MNT_DETACH)
        if self._thread:
            self._thread.join(10)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _serve(self) -> None:
        while True:
            try:
                request = os.read(self._fd, _BUFSIZE)
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue  # ENOENT: the request was interrupted before we read it
                return  # ENODEV: unmounted
            _, opcode, unique, node, _, _, pid, _, _ = _IN.unpack_from(request)
            if opcode in _NO_REPLY:
                continue
            try:
                body = self._handle(opcode, node, pid, request[_IN.size:])
                error = 0
            except OSError as exc:
                body, error = b"", -(exc.errno or errno.EIO)
            with contextlib.suppress(OSError):  # the reader may be gone (interrupted)
                os.write(self._fd, _OUT.pack(_OUT.size + len(body), error, unique) + body)
            if opcode == _DESTROY:
                return

    def _handle(self, opcode: int, node: int, pid: int, arg: bytes) -> bytes:
        if opcode == _INIT:
            minor = struct.unpack_from("<II", arg)[1]
            return struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), 0, 0, 1, 1, 4096, 1, 1, 0, 0, *[0] * 7)
        if opcode == _LOOKUP:
            if node == ROOT and arg.rstrip(b"\0") == FILE_NAME.encode():
                return struct.pack("<QQQQII", FILE, 0, _VALID, _VALID, 0, 0) + _attr(FILE)
            raise OSError(errno.ENOENT, "no such file")
        if opcode == _GETATTR:
            return struct.pack("<QII", _VALID, 0, 0) + _attr(node)
        if opcode in (_OPEN, _OPENDIR):
            fh = self._next_fh
            self._next_fh += 1
            if opcode == _OPEN:
                if node != FILE:
                    raise OSError(errno.EISDIR, "a directory")
                self._open[fh] = self.text_for(pid).encode()
            return struct.pack("<QII", fh, _FOPEN_DIRECT_IO if opcode == _OPEN else 0, 0)
        if opcode == _READ:
            fh, offset, size = _READ_IN.unpack_from(arg)[:3]
            return self._open.get(fh, b"")[offset:offset + size]
        if opcode == _READDIR:
            offset, size = _READ_IN.unpack_from(arg)[1:3]
            entries = [(ROOT, b".", 4), (ROOT, b"..", 4), (FILE, FILE_NAME.encode(), 8)]
            out = b""
            for index, (ino, name, kind) in enumerate(entries[offset:], start=offset + 1):
                entry = _dirent(ino, index, name, kind)
                if len(out) + len(entry) > size:
                    break
                out += entry
            return out
        if opcode in (_RELEASE, _RELEASEDIR):
            self._open.pop(struct.unpack_from("<Q", arg)[0], None)
            return b""
        if opcode == _DESTROY:
            return b""
        if opcode == _STATFS:
            return struct.pack("<QQQQQIIII6I", 0, 0, 0, 1, 0, 4096, 255, 4096, 0, *[0] * 6)
        raise OSError(errno.ENOSYS, "not implemented")  # FLUSH too: the kernel then stops sending it


def node_text(prefix: str, tables: Callable[[int], dict[str, Row] | None]) -> Callable[[int], str]:
    """`text_for` over a per-CTID table source (e.g. a cached `FastReader` result)."""

    made: dict[int | None, tuple[object, str]] = {}

    def text_for(pid: int) -> str:
        ctid = ctid_of(pid, prefix)
        rows = tables(ctid) if ctid is not None else None
        cached = made.get(ctid)
        if cached is not None and cached[0] is rows:
            return cached[1]  # the same table as last time: format it once
        text = user_beancounters({ctid: rows} if ctid is not None and rows else {})
        made[ctid] = (rows, text)
        return text

    return text_for



def cgroup_text(driver: CgroupDriver, *, window: float = WINDOW) -> Callable[[int], str]:
    """`text_for` reading a VPS's cgroup files at most once per `window` seconds: every reader of
    one VPS within a window gets the same text. Counters are the kernel's since the VPS's start
    (an in-memory ledger), as OpenVZ's table restarts with the container."""
    reader = FastReader(driver)
    made: dict[int | None, tuple[float, str]] = {}

    def text_for(pid: int) -> str:
        ctid = ctid_of(pid, driver.prefix)
        now = time.monotonic()
        hit = made.get(ctid)
        if hit is not None and now - hit[0] < window:
            return hit[1]
        rows: dict[str, Row] = {}
        if ctid is not None:
            with contextlib.suppress(KernelError):
                rows = reader.read_one(ctid).rows
        text = user_beancounters({ctid: rows} if ctid is not None and rows else {})
        made[ctid] = (now, text)
        return text

    return text_for


def main(argv: list[str] | None = None) -> None:
    """`python -m kernel.ubc.fusefile MOUNTPOINT --prefix P`: the node's server, in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m kernel.ubc.fusefile", description=main.__doc__)
    parser.add_argument("mountpoint")
    parser.add_argument("--prefix", required=True, help="the node's cgroup prefix")
    args = parser.parse_args(argv)
    server = BeancounterFS(args.mountpoint, cgroup_text(cgroups.detect(args.prefix)))
    signal.signal(signal.SIGTERM, lambda *_: sc.umount2(args.mountpoint, sc.MNT_DETACH))
    server.run()


if __name__ == "__main__":
    main()
