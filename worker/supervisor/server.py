"""The supervisor process: subreaper, init watcher, console keeper, socket server.

One process, one selector loop (listening socket, init pidfds, console masters); each
client request runs in its own thread so a 30-second graceful stop blocks nobody else.
The runtime's per-VPS flock is the only lock for changes (a second one gets Busy).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from kernel import spawn
from kernel import syscalls as sc
from kernel.errors import Busy, InvalidArgument, KernelError, NotFound
from kernel.runtime import Runtime, StartOptions, Status, exit_reason
from worker.nodefiles import NodeFiles
from worker.supervisor import protocol
from worker.supervisor.console import Console

log = logging.getLogger("ctpanel.supervisor")
TICK = 1.0
# Run inside the VPS on a new pty of its own: detach the old console (its pty is gone with the old
# master, so nothing can be mounted onto it) and bind the new pty's slave over /dev/console.
REBIND = ["/bin/sh", "-c", "umount -l /dev/console 2>/dev/null; exec mount --bind /proc/self/fd/0 /dev/console"]


@dataclass
class Init:
    pid: int
    pidfd: int
    child: bool  # started by this process (exit status readable) or adopted after a restart


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _zombie_status(pid: int) -> int | None:
    """An unreaped non-child's wait status (/proc/PID/stat field 52), if still readable."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[49]) if len(fields) > 49 and fields[0] == "Z" else None


# ioctl(PIDFD_GET_INFO) with struct pidfd_info's first version (64 bytes); PIDFD_INFO_EXIT: Linux >= 6.15.
_PIDFD_GET_INFO = (3 << 30) | (64 << 16) | (0xFF << 8) | 11
_PIDFD_INFO_EXIT = 1 << 3


def _reaped_status(pidfd: int) -> int | None:
    """A reaped process's wait status from its pidfd, whoever reaped it (Linux >= 6.15), else None."""
    info = bytearray(64)
    struct.pack_into("Q", info, 0, _PIDFD_INFO_EXIT)
    try:
        fcntl.ioctl(pidfd, _PIDFD_GET_INFO, info, True)
    except OSError:  # an older kernel (ENOTTY/EINVAL), or not reaped yet (ESRCH)
        return None
    return struct.unpack_from("i", info, 60)[0] if struct.unpack_from("Q", info, 0)[0] & _PIDFD_INFO_EXIT else None


def adopted_exit_status(pid: int, pidfd: int, wait: float = 2.0) -> int | None:
    """The wait status of an exited init we did not start (its parent is PID 1 or another subreaper):
    read from the zombie while it is one, from the pidfd once reaped (Linux >= 6.15); None when
    neither tells within `wait` seconds (an older kernel whose PID 1 reaped at once)."""
    deadline = time.monotonic() + wait
    while True:
        status = _zombie_status(pid)
        if status is None:
            status = _reaped_status(pidfd)
        if status is not None or time.monotonic() >= deadline:
            return status
        time.sleep(0.02)


class Supervisor:
    def __init__(self, rt: Runtime, *, path: str | None = None, ring_size: int | None = None,
                 files: NodeFiles | None = None) -> None:
        self.rt = rt
        self.files = files  # the node's in-VPS file servers (lxcfs, beancounters): run and restarted here
        self.path = path or protocol.socket_path(rt.config.state_root)
        self.ring_size = ring_size
        self.sel = selectors.DefaultSelector()
        self.inits: dict[int, Init] = {}
        self.consoles: dict[int, Console] = {}
        self.state = threading.Lock()  # guards inits/consoles; never held across a runtime call
        self.pending: list[Callable[[], None]] = []
        self.retry: dict[int, float] = {}
        self.starting: set[int] = set()  # starts in flight: sync() must not adopt their inits
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stopping = False

    # -- main loop ---------------------------------------------------------------------------------
    def serve(self) -> None:
        sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
        listener = self._listen()
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.sync()
        if self.files:
            self._guarded(self.files.start)
        self._guarded(spawn.prestart)  # its first start then waits for no interpreter start-up
        threading.Thread(target=self.autostart, daemon=True).start()
        log.info("ready on %s, watching %d running VPS(s)", self.path, len(self.inits))
        last = time.monotonic()
        try:
            while not self.stopping:
                for key, _ in self.sel.select(TICK):
                    kind, ctid = key.data
                    if kind == "listen":
                        conn, _ = listener.accept()
                        threading.Thread(target=self.handle, args=(conn,), daemon=True).start()
                    elif kind == "wake":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wake_r, 4096)
                    elif kind == "init":
                        self.sel.unregister(key.fd)
                        threading.Thread(target=self.on_exit, args=(ctid, key.fd), daemon=True).start()
                    elif kind == "console":
                        self._read_console(ctid, key.fd)
                with self.state:
                    calls, self.pending = self.pending, []
                for call in calls:
                    self._guarded(call)
                if time.monotonic() - last >= TICK:
                    last = time.monotonic()
                    self._guarded(self.sync)
                    if self.files:
                        self._guarded(self.files.check)
        finally:
            if self.files:
                self._guarded(self.files.stop)
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    @staticmethod
    def _guarded(fn: Callable[[], None]) -> None:
        """A bug in one step must not end the process that holds every console."""
        try:
            fn()
        except Exception:
            log.exception("supervisor step failed")

    def drop_console(self, ctid: int) -> None:
        """The VPS stopped: detach its clients and forget its buffer. Loop thread only."""
        console = self.consoles.pop(ctid, None)
        if console is not None:
            if console.master is not None:
                self.retry.pop(console.master, None)
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(console.master)
            console.close()

    def _listen(self) -> socket.socket:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        sock.listen(64)
        return sock

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run `fn` on the loop thread (the selector is not thread-safe)."""
        with self.state:
            self.pending.append(fn)
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_w, b"x")

    # -- tracking inits and consoles -----------------------------------------------------------------
    def track(self, ctid: int, pid: int, master: int | None, *, child: bool) -> None:
        """Watch a running init (pidfd) and keep its console master. Loop thread only."""
        current = self.inits.get(ctid)
        if current and current.pid == pid:
            if master is not None:
                os.close(master)
            return
        if current:
            self._untrack(ctid)
        try:
            pidfd = sc.pidfd_open(pid)
        except NotFound:
            if master is not None:
                os.close(master)
            return
        self.inits[ctid] = Init(pid, pidfd, child)
        self.sel.register(pidfd, selectors.EVENT_READ, ("init", ctid))
        if master is not None:
            self._set_console(ctid, master)

    def _untrack(self, ctid: int) -> None:
        init = self.inits.pop(ctid, None)
        if init:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(init.pidfd)
            os.close(init.pidfd)

    def _set_console(self, ctid: int, master: int | None) -> None:
        console = self.consoles.get(ctid)
        if console is None:
            kwargs = {"ring_size": self.ring_size} if self.ring_size else {}
            console = self.consoles[ctid] = Console(ctid, **kwargs)
        if console.master is not None:
            self.retry.pop(console.master, None)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(console.master)
        console.set_master(master)
        if master is not None:
            os.set_blocking(master, False)
            self.sel.register(master, selectors.EVENT_READ, ("console", ctid))

    def _read_console(self, ctid: int, fd: int) -> None:
        console = self.consoles.get(ctid)
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data and console:
            console.feed(data)
        elif not data:
            # No process has the console's slave open (a respawning getty): look again next tick.
            self.sel.unregister(fd)
            self.retry[fd] = time.monotonic() + TICK

    def sync(self) -> None:
        """Adopt running inits this process does not watch yet (after a restart, or started by a
        direct library call such as vzctl's); forget consoles of VPSs that are gone."""
        now = time.monotonic()
        for fd, when in list(self.retry.items()):
            if when <= now:
                del self.retry[fd]
                for ctid, console in self.consoles.items():
                    if console.master == fd:
                        with contextlib.suppress(KeyError, ValueError):
                            self.sel.register(fd, selectors.EVENT_READ, ("console", ctid))
        known = set()
        for ctid in self.rt.registry.ctids():
            known.add(ctid)
            try:
                status = self.rt.status(ctid)
            except KernelError:
                continue
            pid = status.init_pid
            with self.state:
                starting = ctid in self.starting
            if pid and not starting and (ctid not in self.inits or self.inits[ctid].pid != pid):
                self.track(ctid, pid, self._rebind_console(ctid), child=_ppid(pid) == os.getpid())
        for ctid in set(self.consoles) - known:
            self.consoles.pop(ctid).close()

    def _rebind_console(self, ctid: int) -> int | None:
        """A new console pty for a VPS whose master this process does not hold (it was adopted):
        bound over the VPS's /dev/console from inside, so a respawning getty gets it."""
        try:
            attached = self.rt.spawn(ctid, REBIND, tty=True)
        except KernelError as exc:
            log.warning("CT %s: no console: %s", ctid, exc)
            return None
        try:
            code = attached.wait()
        except KernelError as exc:
            log.warning("CT %s: console rebind failed: %s", ctid, exc)
            code = -1
        master, attached.master = attached.master, None
        attached.close()
        if code != 0 and master is not None:
            log.warning("CT %s: console rebind exited with %s", ctid, code)
            os.close(master)
            return None
        return master

    # -- init exits -----------------------------------------------------------------------------------
    def on_exit(self, ctid: int, pidfd: int) -> None:
        """An init exited: reap it, clean up, and start a new one on reboot (thread body)."""
        with self.state:
            init = self.inits.get(ctid)
        if init is None or init.pidfd != pidfd:
            return
        zombie = None if init.child else adopted_exit_status(init.pid, pidfd)
        while True:
            try:
                result = self.rt.collect(ctid)
                break
            except Busy:
                time.sleep(0.2)  # a change is running (a stop through us or vzctl): it cleans up
            except KernelError as exc:
                log.warning("CT %s: collect failed: %s", ctid, exc)
                result = None
                break
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)  # stopped by another client
        done = threading.Event()

        def forget() -> None:
            if self.inits.get(ctid) is init:
                self._untrack(ctid)
                self._set_console(ctid, None)
            done.set()

        self.call_soon(forget)
        done.wait()
        if result is None:  # stopped or restarted by a client; sync() adopts a new init
            self.call_soon(lambda: None if ctid in self.inits else self.drop_console(ctid))
            return
        reason = result.reason if result.reason != "unknown" else exit_reason(zombie) if zombie else "unknown"
        log.info("CT %s: init exited (%s)", ctid, reason)
        if reason in ("reboot", "unknown"):  # unknown: adopted, nobody stopped it, so it is meant to run
            try:
                self.start(ctid)  # the console (and its attached clients) carries on with the new init
                return
            except KernelError as exc:
                log.warning("CT %s: restart after %s failed: %s", ctid, reason, exc)
        self.call_soon(lambda: self.drop_console(ctid))

    # -- verbs ------------------------------------------------------------------------------------------
    def _starting(self, ctid: int, begin: Callable[[], Status]) -> dict[str, Any]:
        """Run a start/restart and watch the new init with its console master."""
        with self.state:
            self.starting.add(ctid)
        done = threading.Event()
        status: Status | None = None

        def adopt() -> None:
            if status and status.init_pid:
                self.track(ctid, status.init_pid, status.console_fd, child=True)
            elif status and status.console_fd is not None:
                os.close(status.console_fd)
            self.starting.discard(ctid)
            done.set()

        try:
            status = begin()
        finally:
            self.call_soon(adopt)
            done.wait()
        return self._status(ctid)

    def start(self, ctid: int) -> dict[str, Any]:
        return self._starting(ctid, lambda: self.rt.start(ctid, StartOptions(console="pty")))

    def restart(self, ctid: int, timeout: float) -> dict[str, Any]:
        return self._starting(ctid, lambda: self.rt.restart(ctid, StartOptions(console="pty"), timeout=timeout))

    def stop(self, ctid: int, fast: bool, timeout: float) -> dict[str, Any]:
        self.rt.stop(ctid, fast=fast, timeout=timeout)
        return self._status(ctid)

    def _status(self, ctid: int) -> dict[str, Any]:
        status = asdict(self.rt.status(ctid))
        status.pop("console_fd")
        console = self.consoles.get(ctid)
        status["console"] = console is not None and console.master is not None
        status["console_buffered"] = len(console.ring) if console else 0
        return status

    def autostart(self) -> None:
        """Start every onboot VPS that is not running (once, when the supervisor starts)."""
        for ctid in self.rt.registry.ctids():
            record = self.rt.registry.find(ctid)
            if record is not None and record.onboot and not self.rt.status(ctid).running:
                try:
                    self.start(ctid)
                    log.info("CT %s: started (onboot)", ctid)
                except KernelError as exc:
                    log.warning("CT %s: onboot start failed: %s", ctid, exc)

    # -- clients -------------------------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != 0:
                # Take the request off the socket first: closing one with unread data resets it
                # before the client has read the refusal.
                conn.settimeout(5)
                with contextlib.suppress(OSError, KernelError):
                    protocol.read_line(conn)
                with contextlib.suppress(OSError):
                    conn.sendall(protocol.encode({"v": protocol.VERSION, "ok": False, "error": "PermissionDenied",
                                                  "message": "the supervisor serves root only"}))
                return
            try:
                request = protocol.decode(protocol.read_line(conn))
                if request.get("v") != protocol.VERSION:
                    raise InvalidArgument(f"unsupported protocol version {request.get('v')!r}")
                op = request.get("op")
                if op == "console":
                    self.attach(conn, self._ctid(request))
                    return
                reply = {"v": protocol.VERSION, "ok": True, **self.dispatch(op, request)}
            except KernelError as exc:
                reply = {"v": protocol.VERSION, "ok": False, "error": type(exc).__name__, "message": str(exc)}
            except Exception as exc:  # a bug must not kill the supervisor
                log.exception("request failed")
                reply = {"v": protocol.VERSION, "ok": False, "error": "KernelError", "message": repr(exc)}
            with contextlib.suppress(OSError):
                conn.sendall(protocol.encode(reply))

    @staticmethod
    def _ctid(request: dict[str, Any]) -> int:
        ctid = request.get("ctid")
        if not isinstance(ctid, int) or isinstance(ctid, bool):
            raise InvalidArgument("ctid: an integer is required")
        return ctid

    def dispatch(self, op: Any, request: dict[str, Any]) -> dict[str, Any]:
        if op == "list":
            return {"vpss": [self._status(ctid) for ctid in self.rt.registry.ctids()]}
        ctid = self._ctid(request)
        timeout = float(request.get("timeout", 30.0))
        if op == "start":
            return {"status": self.start(ctid)}
        if op == "restart":
            return {"status": self.restart(ctid, timeout)}
        if op == "stop":
            return {"status": self.stop(ctid, bool(request.get("fast", False)), timeout)}
        if op == "status":
            return {"status": self._status(ctid)}
        if op == "resize":
            return {"status": self.resize(ctid, request.get("cols"), request.get("rows"))}
        raise InvalidArgument(f"unknown op {op!r}")

    def resize(self, ctid: int, cols: Any, rows: Any) -> dict[str, Any]:
        """Set the console's window size (the browser console follows its window)."""
        console = self.consoles.get(ctid)
        if console is None or console.master is None:
            raise NotFound(f"CT {ctid} has no console (not running)")
        for value in (cols, rows):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InvalidArgument(f"console size: 1..1000 columns and rows, got {value!r}")
        console.resize(cols, rows)
        return self._status(ctid)

    def attach(self, conn: socket.socket, ctid: int) -> None:
        console = self.consoles.get(ctid)
        if console is None or console.master is None:
            raise NotFound(f"CT {ctid} has no console (not running)")
        conn.sendall(protocol.encode({"v": protocol.VERSION, "ok": True}))
        sub, buffered = console.subscribe(conn)
        pump = threading.Thread(target=sub.pump, daemon=True)
        with contextlib.suppress(OSError):
            conn.sendall(buffered)
            pump.start()
            while data := conn.recv(4096):
                console.write(data)
        console.unsubscribe(sub)
        if pump.is_alive():
            pump.join()
