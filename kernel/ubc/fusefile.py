"""The in-VPS beancounter file: one small FUSE filesystem for the node with one file per VPS,
`<mount>/<ctid>`, holding that VPS's table in OpenVZ's format; each VPS gets only its own file
bound read-only at `IN_VPS_PATH` (kernel/ubc/inside.py), so no VPS can name another's.

procfs cannot gain a `/proc/user_beancounters` entry, hence a FUSE file. Cheap to serve: a
file is a separate inode per VPS, so the kernel's page cache may keep its text (nothing is
shared between VPSs), and the server neither answers every open (FUSE_NO_OPEN_SUPPORT: no
OPEN/RELEASE round trips) nor every read. A VPS's table is made at most once per `window`
(1 s) and is never older than that: the first read of a VPS's file asks the server (a GETATTR
and a READ), which makes the text then; from the next window on, a timer makes that VPS's text
itself and stores it in the kernel's page cache (FUSE_NOTIFY_STORE), so reads cost no round
trip, for `pushes` windows (`PUSHES`); then it drops the kernel's copy (FUSE_NOTIFY_INVAL_INODE), and the
VPS's next read asks again. A VPS that asks again within two windows of a drop reads steadily:
its next run is twice as long, up to `MAX_PUSHES` windows (each drop costs two round trips). A
VPS that stopped reading costs nothing after at most `MAX_PUSHES` windows. A text that did not
change is not sent again. (Dropping the copy every window and making the text at the next read
costs two round trips per read: about twice the CPU when every VPS reads once a second.)

Why a timer: letting the first read after the window ask for the attributes (a short attribute
validity with FUSE_AUTO_INVAL_DATA: a new mtime drops the cached pages) would need no thread,
but only read(2) revalidates: sendfile/splice readers such as busybox's cat are served from
the page cache and would see the first table for ever. For the same reason (they never ask for
the size again) a VPS's file keeps one size: the format is fixed-width and the row set fixed.

The rows are the VPS's cgroup files (the fast tier) plus, with `--accounting`, the accounting
rows the node's usage sampler counted last (kernel/ubc/accounting.py, refreshed every
CTPANEL_USAGE_ACCOUNTING_SECONDS; 0 and unlimited until the VPS is first counted).

Speaks the FUSE wire protocol on /dev/fuse directly (a handful of opcodes; no libfuse), so it
needs nothing beyond the kernel's fuse module.
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
from kernel.ubc.accounting import ROWS, SavedRows
from kernel.ubc.counters import UNLIMITED, FastReader, Raw, Row
from kernel.ubc.views import user_beancounters

IN_VPS_PATH = "/run/ctpanel/user_beancounters"
ROOT, FILE_BASE = 1, 2  # a VPS's file is node FILE_BASE + ctid

_IN = struct.Struct("<IIQQIIIHH")
_OUT = struct.Struct("<IiQ")
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")
_READ_IN = struct.Struct("<QQIIQII")
_LOOKUP, _FORGET, _GETATTR, _OPEN, _READ, _STATFS, _RELEASE = 1, 2, 3, 14, 15, 17, 18
_INIT, _OPENDIR, _READDIR, _RELEASEDIR, _INTERRUPT, _DESTROY, _BATCH_FORGET = 26, 27, 28, 29, 36, 38, 42
_NO_REPLY = {_FORGET, _BATCH_FORGET, _INTERRUPT}
_AUTO_INVAL_DATA, _NO_OPEN_SUPPORT = 1 << 12, 1 << 17
_NOTIFY_INVAL_INODE, _NOTIFY_STORE = 2, 4
_FOPEN_KEEP_CACHE = 1 << 1
_BUFSIZE = (1 << 17) + 4096
_VALID = 86400  # seconds the kernel may keep names and attributes: a text change is notified
WINDOW = 1.0  # seconds a VPS's text is reused (how old the table inside may be)
PUSHES = 9  # windows a read VPS's text is stored into the page cache before the kernel must ask again
MAX_PUSHES = 72  # the same for a VPS that read on through each drop: the run doubles up to this
IDLE_FORGET = 300.0  # seconds after which the cgroup files of a VPS whose text nobody asked for are closed


def _attr(node: int, size: int = 0, mtime_ns: int = 0) -> bytes:
    mode, links = (0o040555, 2) if node == ROOT else (0o100444, 1)
    sec, nsec = divmod(mtime_ns, 1_000_000_000)
    return _ATTR.pack(node, size, 0, 0, sec, sec, nsec, nsec, nsec, mode, links, 0, 0, 0, 4096, 0)


def _dirent(ino: int, off: int, name: bytes, kind: int) -> bytes:
    raw = struct.pack("<QQII", ino, off, len(name), kind) + name
    return raw + b"\0" * (-len(raw) % 8)


class BeancounterFS:
    """`text_for(ctid)` returns VPS `ctid`'s file content; made at most once per `window` seconds."""

    def __init__(self, mountpoint: str, text_for: Callable[[int], str], *, window: float = WINDOW,
                 pushes: int = PUSHES) -> None:
        self.mountpoint = mountpoint
        self.text_for = text_for
        self.window = window
        self.pushes = pushes
        self._fd = -1
        self._texts: dict[int, tuple[bytes, int, str]] = {}  # ctid → (text, made at ns, text): read lately
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._no_open = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Mount and serve from daemon threads until `stop()`."""
        self._mount()
        for target, name in ((self._serve, "ubc-fuse"), (self._expire, "ubc-fuse-expire")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def run(self) -> None:
        """Mount and serve in this thread until unmounted (the node's server process)."""
        self._mount()
        threading.Thread(target=self._expire, name="ubc-fuse-expire", daemon=True).start()
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
        self._stopped.set()
        with contextlib.suppress(OSError):
            sc.umount2(self.mountpoint, sc.MNT_DETACH)
        for thread in self._threads:
            thread.join(10)
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _text(self, ctid: int) -> tuple[bytes, int, str]:
        with self._lock:
            made = self._texts.get(ctid)
            if made is None:
                text = self.text_for(ctid)
                made = self._texts[ctid] = (text.encode(), time.time_ns(), text)
            return made

    def _expire(self) -> None:
        """Every window: renew the copies the kernel holds of the texts read lately.

        A text made since the last tick was read (the kernel asked for it). For `PUSHES` windows
        after such a read the timer makes the VPS's next text itself and stores it in the kernel's
        page cache (FUSE_NOTIFY_STORE: the reads in between cost no round trip); then it drops
        the kernel's copy instead (FUSE_NOTIFY_INVAL_INODE), so a VPS still read says so by
        asking again (then its run doubles, up to `MAX_PUSHES`), and one no longer read costs
        nothing from then on."""
        pushing: dict[int, tuple[int, int, str]] = {}  # ctid → (windows left, run length, the kernel's text)
        dropped: dict[int, tuple[int, int]] = {}  # ctid → (tick of the drop, run length): asked again?
        tick = 0
        while not self._stopped.wait(self.window):
            tick += 1
            with self._lock:
                read, self._texts = self._texts, {}
            for ctid, (_, _, text) in read.items():
                run = self.pushes
                last = dropped.pop(ctid, None)
                if last is not None and tick - last[0] <= 2:  # read on through the drop: a steady reader
                    run = min(2 * last[1], MAX_PUSHES) if self.pushes else 0
                if ctid in pushing:  # asked while pushed (the kernel let its copy go): keep the run length
                    run = max(run, pushing[ctid][1])
                pushing[ctid] = (run, run, text)
            for ctid in [c for c, (at, _) in dropped.items() if tick - at > 2]:
                del dropped[ctid]
            for ctid, (left, run, held) in list(pushing.items()):
                node = FILE_BASE + ctid
                if left > 0:
                    with self._lock:
                        text = self.text_for(ctid)
                    if text is held or text == held:  # the kernel's copy is still right: nothing to send
                        pushing[ctid] = (left - 1, run, held)
                        continue
                    raw = text.encode()
                    if len(raw) == len(held):  # a text of another size needs the kernel to ask for the size
                        pushing[ctid] = (left - 1, run, text)
                        if not self._notify(_NOTIFY_STORE, struct.pack("<QQII", node, 0, len(raw), 0) + raw):
                            return
                        continue
                del pushing[ctid]
                dropped[ctid] = (tick, run)
                if not self._notify(_NOTIFY_INVAL_INODE, struct.pack("<Qqq", node, 0, 0)):  # attributes and pages
                    return

    def _notify(self, code: int, notice: bytes) -> bool:
        """Send a notification; False once unmounted."""
        try:
            os.write(self._fd, _OUT.pack(_OUT.size + len(notice), code, 0) + notice)
        except OSError as exc:
            if exc.errno in (errno.EBADF, errno.ENODEV):
                return False
            # ENOENT: the kernel holds no inode for it (not looked up any more)
        return True

    def _serve(self) -> None:
        # One buffer for every request: os.read() of this size would mmap and unmap a fresh one
        # each time (glibc's mmap threshold), ~12 µs of a ~100 µs table.
        buffer = bytearray(_BUFSIZE)
        while True:
            try:
                request = buffer[:os.readv(self._fd, [buffer])]
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue  # ENOENT: the request was interrupted before we read it
                return  # ENODEV: unmounted
            _, opcode, unique, node, _, _, _, _, _ = _IN.unpack_from(request)
            if opcode in _NO_REPLY:
                continue
            try:
                body = self._handle(opcode, node, request[_IN.size:])
                error = 0
            except OSError as exc:
                body, error = b"", -(exc.errno or errno.EIO)
            with contextlib.suppress(OSError):  # the reader may be gone (interrupted)
                os.write(self._fd, _OUT.pack(_OUT.size + len(body), error, unique) + body)
            if opcode == _DESTROY:
                return

    def _file_attr(self, node: int) -> bytes:
        text, made, _ = self._text(node - FILE_BASE)
        return _attr(node, len(text), made)

    def _lookup_attr(self, node: int) -> bytes:
        """The attributes for a LOOKUP, made from a text that is not kept: the lookup is the bind of a
        starting VPS's file, before the start applies its limits; its first read makes the text."""
        with self._lock:
            size = len(self.text_for(node - FILE_BASE).encode())
        return _attr(node, size, time.time_ns())

    def _handle(self, opcode: int, node: int, arg: bytes) -> bytes:
        if opcode == _INIT:
            minor, _, offered = struct.unpack_from("<III", arg, 4)
            flags = offered & (_AUTO_INVAL_DATA | _NO_OPEN_SUPPORT)
            self._no_open = bool(flags & _NO_OPEN_SUPPORT)
            return struct.pack("<IIIIHHIIHHI7I", 7, min(minor, 31), 0, flags, 1, 1, 4096, 1, 1, 0, 0, *[0] * 7)
        if opcode == _LOOKUP:
            name = arg.split(b"\0", 1)[0]
            if node != ROOT or not name.isdigit() or len(name) > 9:
                raise OSError(errno.ENOENT, "no such file")
            child = FILE_BASE + int(name)
            return struct.pack("<QQQQII", child, 0, _VALID, _VALID, 0, 0) + self._lookup_attr(child)
        if opcode == _GETATTR:
            return struct.pack("<QII", _VALID, 0, 0) + (_attr(ROOT) if node == ROOT else self._file_attr(node))
        if opcode == _OPEN:
            if self._no_open:
                raise OSError(errno.ENOSYS, "no open needed")  # the kernel then sends no OPEN/RELEASE
            return struct.pack("<QII", 0, _FOPEN_KEEP_CACHE, 0)
        if opcode == _OPENDIR:
            return struct.pack("<QII", 0, 0, 0)
        if opcode == _READ:
            offset, size = _READ_IN.unpack_from(arg)[1:3]
            return self._text(node - FILE_BASE)[0][offset:offset + size]
        if opcode == _READDIR:
            offset, size = _READ_IN.unpack_from(arg)[1:3]
            out = b""
            for index, (name, kind) in enumerate([(b".", 4), (b"..", 4)][offset:], start=offset + 1):
                entry = _dirent(ROOT, index, name, kind)
                if len(out) + len(entry) > size:
                    break
                out += entry
            return out
        if opcode in (_RELEASE, _RELEASEDIR, _DESTROY):
            return b""
        if opcode == _STATFS:
            return struct.pack("<QQQQQIIII6I", 0, 0, 0, 1, 0, 4096, 255, 4096, 0, *[0] * 6)
        raise OSError(errno.ENOSYS, "not implemented")  # FLUSH too: the kernel then stops sending it


def cgroup_text(driver: CgroupDriver, accounting_rows: str | None = None) -> Callable[[int], str]:
    """`text_for` reading the VPS's cgroup files, plus the accounting rows the node's sampler keeps
    at `accounting_rows` (its last count). Counters are the kernel's since the VPS's start (its
    cgroup's), as OpenVZ's table restarts with the container. A VPS whose files read the
    same as last time (and whose saved rows are the same) gets the same text object again, not
    parsed nor formatted: the server then knows the kernel's copy is still right."""
    reader = FastReader(driver, totals=False)
    saved = SavedRows(accounting_rows) if accounting_rows else None
    uncounted = dict.fromkeys(ROWS, Row(0, 0, UNLIMITED, UNLIMITED, 0))
    last: dict[int, tuple[Raw, dict[str, Row] | None, str]] = {}  # ctid → (files' texts, saved rows, text)
    empty = user_beancounters({})
    seen: dict[int, float] = {}  # ctid → when its text was last asked for
    swept = [time.monotonic()]

    def text_for(ctid: int) -> str:
        now = seen[ctid] = time.monotonic()
        if now - swept[0] > IDLE_FORGET:  # close the files of VPSs no longer read (or destroyed)
            swept[0] = now
            for idle in [c for c, at in seen.items() if now - at > IDLE_FORGET]:
                del seen[idle]
                last.pop(idle, None)
                reader.forget(idle)
        try:
            raw = reader.raw(ctid)
        except KernelError:
            raw = None
        extra = saved(ctid) if saved is not None else None
        made = last.get(ctid)
        if made is not None and made[0] == raw and (made[1] is extra or made[1] == extra):
            return made[2]
        try:
            table = reader.sample(ctid, raw).rows if raw is not None else None
        except KernelError:
            table = None
        if table is None:
            last.pop(ctid, None)
            reader.forget(ctid)
            return empty
        if extra is not None:
            table.update(uncounted)
            table.update(extra)
        text = user_beancounters({ctid: table})
        last[ctid] = (raw, extra, text)
        return text

    return text_for


def main(argv: list[str] | None = None) -> None:
    """`python -m kernel.ubc.fusefile MOUNTPOINT --prefix P`: the node's server, in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m kernel.ubc.fusefile", description=main.__doc__)
    parser.add_argument("mountpoint")
    parser.add_argument("--prefix", required=True, help="the node's cgroup prefix")
    parser.add_argument("--window", type=float, default=WINDOW, help="seconds a table is reused")
    parser.add_argument("--pushes", type=int, default=PUSHES, help="windows a read text is pushed (0: never)")
    parser.add_argument("--accounting", help="the accounting rows the node's sampler keeps (accounting.rows_path)")
    args = parser.parse_args(argv)
    server = BeancounterFS(args.mountpoint, cgroup_text(cgroups.detect(args.prefix), args.accounting),
                           window=args.window, pushes=args.pushes)
    signal.signal(signal.SIGTERM, lambda *_: sc.umount2(args.mountpoint, sc.MNT_DETACH))
    server.run()


if __name__ == "__main__":
    main()
