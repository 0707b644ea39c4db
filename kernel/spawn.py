"""Creating a VPS's init: fork, new namespaces, id mapping, idmapped root, exec.

Four processes take part::

    P  (caller: node worker or supervisor, host root)
    └─ S  the spawner: a lean `python -I -S` P starts at its first VPS start
       └─ C1  made ahead of time: unshares user+net+ipc+uts+pid, forks C2, waits
          └─ C2  PID 1 of the new PID namespace, waiting for a start on S's queue

C1 and C2 are forks of S (~13 MB, this module's imports), never of P (the
worker: 20-60 MB), and they are made before any start asks: a start finds
its namespaces (a new network namespace alone costs ~0.5 ms) and PID 1
ready, the fork, copy-on-write faults and the old image's tear-down at
init's exec cost what a small process costs, and P's pages stay unshared.
S lives as long as P (it ends when P's end of the queue closes: P's exit);
it keeps one waiting pre-init, so one C1 and one C2 per caller, none per VPS.
It also keeps two exec helpers waiting on a second socket (`start_helper`,
kernel/helper.py), reaps the helpers and ends their reports.

A start (`Starting`) queues its socket at once (before the volume and the
cgroups are ready). The waiting C2 takes it, lets C1 exit (so C2 is
reparented to the nearest subreaper, the supervisor, or the host's init:
no ctpanel process stays behind per VPS; S reaps C1 and makes the next
pre-init) and sends P pidfds of itself and of C1. P writes the uid_map and
gid_map of the user namespace (the VPS's 65536-id host range) through
/proc/C2, checked with the pidfd to be C2's, and makes the idmapped mount of
the volume (only host root may idmap a mount of a host filesystem). One
message gives C2 the spec, descriptors of the VPS's inner cgroup.procs files
opened by P (C2 moves itself with P's rights) and the mount. C2 joins,
unshares mnt+cgroup (the cgroup namespace's root is the VPS's cgroup; the
mount namespace a copy of the host's as of now) and reports it ("J": from
then on, killing the cgroups kills it); it builds the mount tree while P
runs its start hooks, then waits; P tells it to exec. C2's socket end is
close-on-exec: EOF means init is running; P then makes sure C1 has exited,
so C2 is the subreaper's child. A C1 that cannot make its namespaces reports
the error to the next start queued.
"""

from __future__ import annotations

import _thread
import contextlib
import json
import os
import select
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from kernel import fdpass, rootfs, running, seccomp
from kernel import syscalls as sc
from kernel.errors import KernelError, Timeout, from_errno
from kernel.idrange import IdRange
from kernel.running import INIT_PATH, NAMESPACES

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable


@dataclass(frozen=True)
class InitSpec:
    """Everything the pre-init children need, computed by the parent beforehand."""

    ctid: int
    volume: str  # host path of the VPS's root directory (a plain dir or a mounted volume)
    ids: IdRange
    stage_dir: str  # empty host directory the root is attached to before pivot_root
    hostname: str
    init: str
    cgroup_procs: tuple[str, ...]  # inner cgroup.procs files to join before unsharing
    rootfs: rootfs.RootfsOptions = field(default_factory=rootfs.RootfsOptions)
    seccomp: bool = True  # False only for the negative-control tests
    console: str | None = None  # None: /dev/null; "pty": a pty of the VPS's devpts; else a host tty
    lxcfs: str | None = None  # a running lxcfs mount: its /proc files replace the real ones
    binds: tuple[tuple[str, str], ...] = ()  # (host file, path inside): bound read-only if it opens
    env: tuple[tuple[str, str], ...] = (("container", "ctpanel"), ("PATH", INIT_PATH), ("HOME", "/"))
    timeout: float = 10.0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> InitSpec:
        raw = json.loads(data)
        raw["ids"] = IdRange(**raw["ids"])
        raw["rootfs"] = rootfs.RootfsOptions(**raw["rootfs"])
        raw["cgroup_procs"] = tuple(raw["cgroup_procs"])
        raw["env"] = tuple(tuple(pair) for pair in raw["env"])
        raw["binds"] = tuple(tuple(pair) for pair in raw["binds"])
        return cls(**raw)


def idmapped_mount(source: str, userns_fd: int) -> int:
    """A detached clone of the mount at `source`, idmapped through `userns_fd`."""
    fd = sc.open_tree(
        sc.AT_FDCWD,
        source,
        sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC | sc.AT_SYMLINK_NOFOLLOW,
    )
    try:
        sc.mount_setattr(
            fd, "", sc.AT_EMPTY_PATH, attr_set=sc.MOUNT_ATTR_IDMAP, userns_fd=userns_fd
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def user_namespace(ids: IdRange) -> int:
    """An fd of a new, empty user namespace mapping 0..65535 to `ids` (for idmapped mounts
    made while the VPS is stopped). A throwaway child creates it and exits; the fd keeps it."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise KernelError("could not create a user namespace")
        _write_proc(pid, "uid_map", ids.map_line())
        _write_proc(pid, "gid_map", ids.map_line())
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def _write_proc(pid: int, name: str, text: str) -> None:
    proc = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_at(proc, name, text)
    finally:
        os.close(proc)


def _write_at(dir_fd: int, name: str, text: str) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _report(sock: fdpass.Socket, exc: BaseException) -> None:
    err = getattr(exc, "errno", None)
    payload = {"errno": err if isinstance(err, int) else None, "message": f"{exc}"[:2000]}
    with contextlib.suppress(OSError):
        sock.send(b"E" + json.dumps(payload).encode())


def _raise_child_error(ctid: int, data: bytes) -> None:
    try:
        payload = json.loads(data[1:])
    except ValueError:
        payload = {"errno": None, "message": data[1:].decode(errors="replace")}
    message = f"CT {ctid}: init setup failed: {payload.get('message')}"
    if payload.get("errno"):
        raise from_errno(int(payload["errno"]), message)
    raise KernelError(message)


class Starting:
    """The parent's handle on a VPS between fork and exec (see the module doc)."""

    def __init__(self, ctid: int, timeout: float = 10.0) -> None:
        """Queue the start for the spawner's waiting pre-init at once (see the module doc)."""
        self.ctid = ctid
        self.timeout = timeout
        self.pid = 0  # host PID of C2, the future init
        self.pidfd = -1
        self.console_master = -1  # with console="pty": the master of the VPS's console
        self._c1 = -1  # pidfd of C1 (the spawner's child, C2's parent until C2 takes a start)
        self._sock, child = fdpass.seqpacket_pair()
        self._sock.settimeout(timeout)
        try:
            _SPAWNER.request(ctid, child)
        except BaseException:
            self._sock.close()
            raise
        finally:
            child.close()

    def begin(self, spec: InitSpec) -> None:
        """Hand the waiting pre-init `spec` once the VPS's cgroups exist; returns once it has its
        ids and has joined them (it builds its mount tree meanwhile)."""
        try:
            data, fds = self._recv(2)  # C2's claim: its pidfd and its parent C1's
            if data != b"C" or len(fds) != 2:
                for fd in fds:
                    os.close(fd)
                raise KernelError(f"CT {self.ctid}: no pre-init took the start")
            self.pidfd, self._c1 = fds
            self.pid = _pidfd_pid(self.pidfd)
            self._handshake(spec)
        except BaseException:
            self.abort()
            raise

    def _recv(self, maxfds: int = 1) -> tuple[bytes, list[int]]:
        """One message and the descriptors it carried."""
        try:
            data, fds = fdpass.recv_fds(self._sock, 65536, maxfds)
        except TimeoutError:
            raise Timeout(f"CT {self.ctid}: init setup timed out") from None
        if data.startswith(b"E"):
            for fd in fds:
                os.close(fd)
            _raise_child_error(self.ctid, data)
        return data, fds

    def _handshake(self, spec: InitSpec) -> None:
        # C2 made its pidfd itself. /proc/PID opened before the pidfd is seen alive is C2's
        # directory, and stays C2's (a dead task's entries fail).
        proc = os.open(f"/proc/{self.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            sc.pidfd_send_signal(self.pidfd, 0)
            _write_at(proc, "uid_map", spec.ids.map_line())
            _write_at(proc, "gid_map", spec.ids.map_line())
            userns = os.open("ns/user", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
        finally:
            os.close(proc)
        fds: list[int] = []
        try:
            # Opened here, written by C2 ("0": itself): the kernel checks the opener's rights.
            fds += [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in spec.cgroup_procs]
            fds.append(idmapped_mount(spec.volume, userns))
            fdpass.send_fds(self._sock, b"G" + spec.to_json(), fds)  # the cgroup.procs files, then the root
        finally:
            os.close(userns)
            for fd in fds:
                os.close(fd)
        data, fds = self._recv()  # from here on, killing the cgroups kills the future init
        for fd in fds:
            os.close(fd)
        if data != b"J":
            raise KernelError(f"CT {self.ctid}: the pre-init did not join its cgroups")

    @property
    def ns_dir(self) -> str:
        """/proc/<pid>/ns of the future init: where start hooks find the VPS's namespaces."""
        return f"/proc/{self.pid}/ns"

    def exec_init(self) -> None:
        """Let C2 exec init; return once init runs, or raise what went wrong."""
        # "X" goes first: C2 reads it after its "R", so it execs without waiting for us to wake up.
        with contextlib.suppress(BrokenPipeError):  # C2 is gone: the reads below say how
            self._sock.send(b"X")
        data, fds = self._recv()
        if fds:
            self.console_master = fds[0]
        if data != b"R":
            raise KernelError(f"CT {self.ctid}: init setup failed")
        data, fds = self._recv()
        for fd in fds:
            os.close(fd)
        if data:
            raise KernelError(f"CT {self.ctid}: unexpected message from init")
        self._sock.close()
        self._end_c1()
        if not _alive(self.pid):  # killed before it could report (EOF without a message)
            raise KernelError(f"CT {self.ctid}: init died before or right after exec")

    def _end_c1(self, kill: bool = False) -> None:
        """Until C1 has exited (it does once C2 took a start): then C2 is the subreaper's child."""
        if self._c1 < 0:
            return
        try:
            if kill:
                with contextlib.suppress(KernelError):
                    sc.pidfd_send_signal(self._c1, signal.SIGKILL)
            if not running.pidfd_exited(self._c1, self.timeout):
                raise Timeout(f"CT {self.ctid}: the pre-init child did not exit")
        finally:
            os.close(self._c1)
            self._c1 = -1

    def abort(self) -> None:
        """Kill whatever was created; the caller's reverter removes cgroups."""
        if self.console_master >= 0:
            os.close(self.console_master)
            self.console_master = -1
        self._sock.close()  # a pre-init that took this start and waits for "G" sees the end and exits
        with contextlib.suppress(Timeout):
            self._end_c1(kill=True)
        if self.pidfd >= 0:
            with contextlib.suppress(KernelError):
                sc.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            reap(self.pid)
        self.close()

    def close(self) -> None:
        self._sock.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def take_console(self) -> int | None:
        """Hand the console master to the caller (who must close it); None without one."""
        fd, self.console_master = self.console_master, -1
        return fd if fd >= 0 else None


class _Spawner:
    """P's side of its spawner S: started on the first request, again if it died or P forked."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._exec_lock = _thread.allocate_lock()  # one exec request and its answer at a time
        self._owner = 0  # the PID that started `_proc`: a forked child starts its own
        self._ctl: fdpass.Socket | None = None
        self._exec: fdpass.Socket | None = None  # exec requests (the queue is the pre-inits')
        self._proc: subprocess.Popen[bytes] | None = None

    def request(self, ctid: int, child: fdpass.Socket) -> None:
        """Queue a start for the next waiting pre-init; `child` is its end of the start's socket."""
        message = b"S"
        for attempt in (0, 1):
            ctl = self.socket(restart=attempt == 1)
            try:
                fdpass.send_fds(ctl, message, [child.fileno()])
                return
            except (BrokenPipeError, ConnectionResetError):
                if attempt:
                    raise KernelError(f"CT {ctid}: the spawner is gone") from None

    def socket(self, *, restart: bool = False) -> fdpass.Socket:
        """The queue to this process's spawner, started first if need be."""
        with self._lock:
            mine = self._owner == os.getpid()
            if mine and not restart and self._ctl is not None and self._proc and self._proc.poll() is None:
                return self._ctl
            from kernel import run  # P only: S stays without subprocess

            if mine and self._ctl is not None:
                dead = self._proc is not None and self._proc.poll() is not None
                strays = _orphaned_waiters() if dead else []
                self._ctl.close()  # the waiting C2 reads the end and exits; its C1 reaps it and exits
                # (and the waiting exec helper ends at its channel's end)
                if self._exec is not None:
                    self._exec.close()
                if self._proc is not None:
                    with contextlib.suppress(OSError):
                        self._proc.kill()
                    self._proc.wait()
                for pidfd in strays:
                    _reap_stray(pidfd)
            ours, theirs = fdpass.seqpacket_pair()
            exec_ours, exec_theirs = fdpass.seqpacket_pair()
            try:
                root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                code = ("import sys; sys.path[:0] = sys.argv[1:2]; import kernel.spawn as s; "
                        "s.serve(int(sys.argv[2]), int(sys.argv[3]))")
                fds = (theirs.fileno(), exec_theirs.fileno())
                argv = [sys.executable, "-I", "-S", "-c", code, root, *map(str, fds)]
                self._proc = run.background(argv, pass_fds=fds)
            finally:
                theirs.close()
                exec_theirs.close()
            exec_ours.settimeout(EXEC_TIMEOUT)
            self._ctl, self._exec, self._owner = ours, exec_ours, os.getpid()
            return ours

    def start_helper(self, request: bytes, fds: list[int]) -> tuple[int, int] | None:
        """Hand `request` and `fds` to the exec helper S keeps waiting (it runs
        `kernel.helper.helper_main`); (PID, pidfd) of the helper, or None when this process has no
        spawner running (then nothing was sent: the caller forks the helper itself). A helper
        that took the request and died before answering may have started it: that raises rather
        than run it twice."""
        with self._exec_lock:
            chan = self._exec
            if chan is None or self.pid() is None:
                return None
            try:
                fdpass.send_fds(chan, b"E" + request, fds)
            except (BrokenPipeError, ConnectionResetError):
                return None
            try:
                data, got = fdpass.recv_fds(chan, 4096, 1)
            except TimeoutError:
                data, got = b"", []
            if not data:  # no answer in time (a late one would answer the next request), or S died
                chan.close()
                self._exec = None
        if data.startswith(b"H ") and len(got) == 1:
            return int(data[2:]), got[0]
        for fd in got:
            os.close(fd)
        why = data[1:].decode(errors="replace") or "no answer"
        raise KernelError(f"exec: the spawner did not start the helper: {why}")

    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and self._owner == os.getpid() and proc.poll() is None else None

    def forget(self) -> None:
        """In a forked child: drop the parent's spawner (its socket would keep S alive)."""
        for sock in (self._ctl, self._exec):
            if sock is not None and self._owner != os.getpid():
                sock.close()
        self._ctl = self._exec = self._proc = None
        self._owner = 0
        self._lock = _thread.allocate_lock()
        self._exec_lock = _thread.allocate_lock()


def _orphaned_waiters() -> list[int]:
    """Pidfds of what a dead spawner left waiting and to us (we are a subreaper): forks of it
    (its command line) that are a waiting C1 (its child is PID 1 of a PID namespace) or the
    waiting exec helper (no child, still in our user namespace). Both end once we close the
    spawner's sockets; a helper running a command is left to its caller's wait."""
    found = []
    own_userns = os.readlink("/proc/self/ns/user")
    for child in running.children():
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"kernel.spawn" not in fh.read():
                    continue
            kids = running.children(child)
            if any(_nspid(kid) == "1" for kid in kids) or (
                    not kids and os.readlink(f"/proc/{child}/ns/user") == own_userns):
                found.append(sc.pidfd_open(child))  # our child: its PID stays its own until we reap it
        except (OSError, KernelError):
            continue
    return found


def _nspid(pid: int) -> str:
    """`pid`'s PID in its innermost PID namespace ("" when gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            return next((line.split()[-1] for line in fh if line.startswith("NSpid:")), "")
    except OSError:
        return ""


def _reap_stray(pidfd: int) -> None:
    """Reap a dead spawner's waiting child once it has exited (a C2 ends at the queue's end, its
    C1 then; the waiting exec helper at its channel's end)."""
    try:
        if running.pidfd_exited(pidfd, 10.0):
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
    finally:
        os.close(pidfd)


REFILL_DELAY_MS = 20  # see serve()
SPARE_HELPERS = 2  # exec helpers the spawner keeps waiting (see serve())
EXEC_TIMEOUT = 10.0  # seconds an exec request waits for the waiting helper's answer
_SPAWNER = _Spawner()
os.register_at_fork(after_in_child=_SPAWNER.forget)


def prestart() -> None:
    """Start this process's spawner now rather than in its first VPS start (a long-lived caller
    such as a worker pool process, at its start: the spawner's interpreter start-up and the
    first pre-init take some 30-60 ms)."""
    _SPAWNER.socket()


def spawner_pid() -> int | None:
    """This process's spawner S while it runs (diagnostics, tests); None before the first start."""
    return _SPAWNER.pid()


def start_helper(request: bytes, fds: list[int]) -> tuple[int, int] | None:
    """`kernel.enter.spawn_in`'s `spawner`: this process's spawner forks the exec helper."""
    return _SPAWNER.start_helper(request, fds)


def serve(fd: int, exec_fd: int = -1) -> None:  # pragma: no cover - the spawner process
    """S's loop: keep one pre-init (C1 and its C2) waiting on the queue socket `fd`; when its C1
    exits (its C2 took a start), reap it and make the next. Keep `SPARE_HELPERS` exec helpers
    waiting on `exec_fd` in the same way; reap the helpers that took a request and end their
    reports. Return once P's end of the queue is closed.

    The next pre-init is made `REFILL_DELAY_MS` after a start took one (its init boots, its
    caller goes on: they have the CPUs), or at once for a start queued meanwhile; the next exec
    helper as long after one took a request (a spare serves the next exec meanwhile: an exec
    right after a start, then another, compete with no helper being made), at once when none
    is left waiting."""
    from kernel import helper  # the exec helpers' code, imported before any is forked

    queue = fdpass.Socket(fileno=fd)
    programs = {True: seccomp.build(), False: b""}
    seccomp.prepare(programs[True])  # made once here, not in each forked helper
    helpers: dict[int, tuple[int, int]] = {}  # pidfd -> (PID, our copy of its report pipe, or -1)
    waiting: dict[int, tuple[int, int, fdpass.Socket]] = {}  # claims fd -> waiting helper's PID, pidfd, claims
    poller = select.poll()
    poller.register(fd, select.POLLIN)  # a start queued while no pre-init waits; POLLHUP: P has gone
    c1, c1_fd = 0, -1
    refill_at: float | None = 0.0  # when to make the next pre-init; None while one waits
    refill_helpers_at: float | None = 0.0 if exec_fd >= 0 else None  # None while enough wait

    def ours() -> list[int]:  # S's descriptors, none of which a child keeps
        extra = [c1_fd, *helpers, *(report for _, report in helpers.values())]
        for _, pidfd, claims in waiting.values():
            extra += [pidfd, claims.fileno()]
        return [each for each in extra if each >= 0]

    while True:
        now = time.monotonic()
        if refill_at is not None and now >= refill_at:
            c1 = os.fork()
            if c1 == 0:
                for inherited in ([exec_fd] if exec_fd >= 0 else []) + ours():
                    os.close(inherited)
                _stage1(queue, programs)
            c1_fd = sc.pidfd_open(c1)  # our unreaped child: the pidfd is its
            poller.register(c1_fd, select.POLLIN)
            poller.modify(fd, 0)  # POLLHUP only: the waiting C2 reads the queue, not S
            refill_at = None
        while refill_helpers_at is not None and now >= refill_helpers_at and len(waiting) < SPARE_HELPERS:
            claims, theirs = fdpass.seqpacket_pair()
            pid = os.fork()
            if pid == 0:
                for inherited in [fd, claims.fileno(), *ours()]:
                    os.close(inherited)
                _wait_for_request(exec_fd, theirs, programs, helper.helper_main)
            theirs.close()
            waiting[claims.fileno()] = pid, sc.pidfd_open(pid), claims
            poller.register(claims.fileno(), select.POLLIN)
        if len(waiting) >= SPARE_HELPERS or exec_fd < 0:
            refill_helpers_at = None
        deadlines = [each for each in (refill_at, refill_helpers_at) if each is not None]
        wait = -1 if not deadlines else max(1, int((min(deadlines) - time.monotonic()) * 1000) + 1)
        for ready, events in poller.poll(wait):
            if ready == fd:
                if events & select.POLLHUP:
                    return
                refill_at = 0.0
            elif ready == c1_fd:
                poller.unregister(c1_fd)
                os.close(c1_fd)
                os.waitpid(c1, 0)
                c1_fd = -1
                refill_at = time.monotonic() + REFILL_DELAY_MS / 1000
                poller.modify(fd, select.POLLIN)
            elif ready in waiting:
                pid, pidfd, claims = waiting.pop(ready)
                poller.unregister(ready)
                data, fds = fdpass.recv_fds(claims, 16, 1)
                claims.close()
                helpers[pidfd] = pid, fds[0] if fds else -1
                poller.register(pidfd, select.POLLIN)
                if not data:  # it ended without taking a request: P closed the channel
                    exec_fd = -1
                elif not waiting:
                    refill_helpers_at = 0.0
                elif refill_helpers_at is None:
                    refill_helpers_at = time.monotonic() + REFILL_DELAY_MS / 1000
            elif ready in helpers:
                pid, report = helpers.pop(ready)
                poller.unregister(ready)
                _, status = os.waitpid(pid, 0)
                if report >= 0:
                    with contextlib.suppress(OSError):  # P gone: nobody reads it
                        os.write(report, b"end %d\n" % status)
                    os.close(report)
                os.close(ready)


def _wait_for_request(  # pragma: no cover - the waiting exec helper
    exec_fd: int,
    claims: fdpass.Socket,
    programs: dict[bool, bytes],
    main: Callable[[dict, list[int], dict[bool, bytes]], None],
) -> None:
    """A helper forked ahead of its request: take the next one from `exec_fd`, answer P with our
    PID and pidfd, hand S a copy of the report pipe ("T": S reaps us and ends the report), run
    it (`main`). A request that cannot be read is refused ("E" to P, "F" to S)."""
    try:
        from kernel import helper

        if not running.wait_readable(exec_fd, 0):  # with a request waiting, serve it first
            helper.warm_up()
        chan = fdpass.Socket(fileno=exec_fd)
        data, fds = fdpass.recv_fds(chan, 1 << 20, 6)
        if not data:  # P closed the channel
            os._exit(0)
        try:
            if len(fds) < 3:
                raise ValueError("an exec request without its descriptors")
            request = json.loads(data[1:])
        except ValueError as exc:
            chan.send(b"E" + f"{exc}".encode()[:2000])
            claims.send(b"F")
            os._exit(1)
        me = sc.pidfd_open(os.getpid())
        fdpass.send_fds(chan, b"H %d" % os.getpid(), [me])
        os.close(me)
        fdpass.send_fds(claims, b"T", [fds[1]])
        claims.close()
        chan.close()
        main(request, fds, programs)
    finally:
        os._exit(126)


def _pidfd_pid(pidfd: int) -> int:
    """The PID (in our namespace) of the process behind `pidfd`."""
    with open(f"/proc/self/fdinfo/{pidfd}", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("Pid:"):
                pid = int(line.split()[1])
                if pid > 0:
                    return pid
    raise KernelError("the pre-init has exited")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except OSError:
        return False


def reap(pid: int) -> int | None:
    """Collect `pid`'s exit status if it is our child (we are the subreaper); else None."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return status


# -- the children ----------------------------------------------------------------------------


def _stage1(queue: fdpass.Socket, programs: dict[bool, bytes]) -> None:  # pragma: no cover
    """C1: new user, net, IPC, UTS and PID namespaces; fork C2 into them, wait until it took a
    start (then exit: C2 is reparented) or ended (reap it, exit). A failure goes to the next
    start queued."""
    try:
        claimed_r, claimed_w = os.pipe()
        me = sc.pidfd_open(os.getpid())
        sc.unshare(NAMESPACES & ~(sc.CLONE_NEWNS | sc.CLONE_NEWCGROUP))  # those two once C2 has a VPS
        pid = os.fork()
        if pid == 0:
            os.close(claimed_r)
            _stage2(queue, programs, claimed_w, me)
        queue.close()
        os.close(claimed_w)
        if os.read(claimed_r, 1) != b"C":  # C2 ended without a start (P gone, or a start given up):
            os.waitpid(pid, 0)  # reaped here, not left to the subreaper as a zombie
        os._exit(0)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            _, fds = fdpass.recv_fds(queue, 16, 1)
            if fds:
                _report(fdpass.Socket(fileno=fds[0]), exc)
    os._exit(1)


def _stage2(queue: fdpass.Socket, programs: dict[bool, bytes], claimed: int, c1: int) -> None:  # pragma: no cover
    """C2, PID 1 of the new PID namespace: wait for a start, then join the VPS's cgroups, make
    its mount and cgroup namespaces, build the mount tree, wait, exec init."""
    sock = None
    try:
        data, fds = fdpass.recv_fds(queue, 16, 1)
        if data != b"S" or len(fds) != 1:  # b"": P has gone
            os._exit(1)
        queue.close()
        sock = fdpass.Socket(fileno=fds[0])
        me = sc.pidfd_open(1)  # ourselves (PID 1 here)
        fdpass.send_fds(sock, b"C", [me, c1])  # fails if P gave the start up: C1 reaps us
        os.close(me)
        os.close(c1)
        os.write(claimed, b"C")  # C1 exits: we are reparented to the subreaper; S makes the next pre-init
        os.close(claimed)
        data, fds = fdpass.recv_fds(sock, 65536, 32)
        if not data.startswith(b"G") or not fds:  # b"": P gave up
            os._exit(1)
        spec = InitSpec.from_json(data[1:])
        *procs, mount_fd = fds
        if len(procs) != len(spec.cgroup_procs):
            os._exit(1)
        for fd in procs:
            os.write(fd, b"0")
            os.close(fd)
        sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWCGROUP)  # the cgroup namespace's root: the VPS's cgroups
        sock.send(b"J")
        os.setsid()
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        stage = os.open(spec.stage_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        sc.attach(mount_fd, stage)
        os.close(stage)
        os.close(mount_fd)
        root_fd = os.open(spec.stage_dir, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        # Host-side sources, opened while the host's tree is still visible.
        nodes = {n: os.open(f"/dev/{n}", os.O_PATH | os.O_CLOEXEC) for n in rootfs.DEV_NODES}
        if spec.console != "pty":
            nodes["console"] = os.open(spec.console or "/dev/null", os.O_PATH | os.O_CLOEXEC)
        lxcfs = {}
        for name in rootfs.LXCFS_PROC if spec.lxcfs else ():
            # A dead lxcfs (ENOTCONN) leaves the real file: the supervisor binds its restarted
            # lxcfs's files into every running VPS, this one included.
            with contextlib.suppress(OSError):
                lxcfs[name] = os.open(f"{spec.lxcfs}/proc/{name}", os.O_PATH | os.O_CLOEXEC)
        files = []  # node-served files: a server that is down leaves its file out (its restart binds it)
        for host, inside in spec.binds:
            with contextlib.suppress(OSError, KernelError):
                files.append((rootfs.node_file(host), inside))
        sc.sethostname(spec.hostname)
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)
        rootfs.mount_proc(root_fd, spec.rootfs, nodes["null"], lxcfs)
        for fd in lxcfs.values():
            os.close(fd)
        rootfs.mount_sys(root_fd, spec.rootfs)
        rootfs.mount_dev(root_fd, spec.rootfs, nodes)
        for fd in nodes.values():
            os.close(fd)
        master = rootfs.console_pty(root_fd) if spec.console == "pty" else -1
        rootfs.pivot(root_fd)
        os.close(root_fd)
        for fd, inside in files:  # resolved in the VPS's tree, as its root would
            with contextlib.suppress(OSError, KernelError):
                rootfs.attach_file(fd, inside)
            os.close(fd)
        sc.join_session_keyring()
        if master >= 0:
            fdpass.send_fds(sock, b"R", [master])
            os.close(master)
        else:
            sock.send(b"R")
        if sock.recv(16) != b"X":
            os._exit(1)
        console = os.open("/dev/console", os.O_RDWR | os.O_NOCTTY)
        for target in (0, 1, 2):
            os.dup2(console, target)
        os.close(console)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
        if programs[spec.seccomp]:
            seccomp.install(programs[spec.seccomp])
        os.execve(spec.init, [spec.init], dict(spec.env))  # noqa: S606 - the VPS's init
    except BaseException as exc:
        if sock is not None:
            _report(sock, exc)
    os._exit(127)
