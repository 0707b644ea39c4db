"""Running a command inside a running VPS (`vzctl exec`, `exec2`, `enter`): the caller's side.

What runs after the fork, in the helper H that enters the VPS and starts the command, is
kernel/helper.py. If H dies, `Attached.wait` kills and reaps the orphaned command when it
came to the caller (a subreaper): an unreaped zombie of the VPS's PID namespace would keep
its init from ever finishing its exit, and `stop()` from returning.

The helpers report to the caller in lines on a pipe ("pid N", "exit N", "error TEXT");
only the pty master travels over a socket (SCM_RIGHTS), so `vzctl exec`
without a terminal never imports `_socket` (issue 4). H reports the command's exit code
before it exits, so `run_in` returns without waiting for H's own teardown (the exit of a
forked copy of the caller, ~0.3-0.5 ms): a thread of the caller reaps H once it has exited.

A caller with a spawner (kernel/spawn.py: a lean `python -I -S` a VPS-starting process
keeps) has its H forked by the spawner ahead of the request instead (`spawn_in(spawner=...)`):
the request and the descriptors (the init's pidfd, the report pipe, the stdio pipes or the pty
socket) go over SCM_RIGHTS to the waiting H, which answers with its pidfd; the spawner reaps
H and ends the report with "end STATUS" (H's wait status) before it closes its copy of the
pipe: the report's end then means H is reaped. No fork on the exec's path, and H is a fork
of a 13 MB process instead of the caller's 20-60 MB.
"""

from __future__ import annotations

import _signal as signal  # the C module: signal.py builds enums (~0.4 ms of vzctl exec's start)
import _thread
import contextlib
import os
import select
import time

from kernel import helper, seccomp
from kernel import syscalls as sc
from kernel.errors import InvalidArgument, KernelError, NotFound, Timeout
from kernel.running import children, pidfd_exited, proc_stat, wait_readable

TYPE_CHECKING = False  # typing and collections.abc: imports vzctl exec does not need
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kernel import fdpass

#: Seconds a session's helper gets to reap its killed command and exit before it is killed too.
HELPER_GRACE = 2.0


class ExecResult(tuple):
    """`returncode` (int): the command's exit code, or 128+N when killed by signal N;
    `stdout`, `stderr` (bytes). A tuple with names: no dataclass (running.py), and no
    collections.namedtuple, whose making costs ~0.1 ms of vzctl exec's start."""

    __slots__ = ()

    def __new__(cls, returncode: int, stdout: bytes, stderr: bytes) -> ExecResult:
        return super().__new__(cls, (returncode, stdout, stderr))

    def __getnewargs__(self) -> tuple[int, bytes, bytes]:  # pickle and copy, as a named tuple's
        return self[0], self[1], self[2]

    @property
    def returncode(self) -> int:
        return self[0]

    @property
    def stdout(self) -> bytes:
        return self[1]

    @property
    def stderr(self) -> bytes:
        return self[2]


class Attached:
    """A command running inside a VPS. With a pty: `master`; else `stdin`/`stdout`/`stderr` pipes."""

    def __init__(self, pid: int, report: int, pidfd: int = -1) -> None:
        self.pid = pid  # the host-side helper H
        self.pidfd = pidfd  # H's pidfd when the spawner made H (its child, not ours); else -1
        self._end_status: int | None = None  # the spawner's "end STATUS": H's wait status, once reaped
        self.inner_pid = 0  # H2, the command, as a host PID
        self._report = report  # the read end of the helpers' report pipe (lines); -1 once closed
        self._pending = b""
        self._ended = False
        self._messages: list[bytes] = []
        self._exit_code: int | None = None  # H's "exit N": the command's code, sent before H exits
        self.master: int | None = None
        self.stdin: int | None = None
        self.stdout: int | None = None
        self.stderr: int | None = None
        self.returncode: int | None = None

    def _read(self, timeout: float | None) -> None:
        """Take the report lines there are, waiting up to `timeout` seconds (None: for ever) for
        the first; `TimeoutError` when none came. The pipe's end (every helper gone) ends it."""
        if not wait_readable(self._report, timeout):
            raise TimeoutError("no report from the exec helper")
        data = os.read(self._report, 65536)
        self._ended = not data
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if line.startswith(b"pid "):
                self.inner_pid = int(line[4:])
            elif line.startswith(b"exit "):
                self._exit_code = int(line[5:])
            elif line.startswith(b"end ") and self.pidfd >= 0:
                self._end_status = int(line[4:])
            elif line:
                self._messages.append(line)

    def command_pid(self, timeout: float | None = None) -> int:
        """The command's host PID, once the helper has started it (0 if it could not);
        `TimeoutError` after `timeout` seconds."""
        while not self.inner_pid and not self._ended:
            self._read(timeout)
        return self.inner_pid

    def wait(self, *, reap_later: bool = False) -> int:
        """Wait for the command; its exit code. Raises if it could not be exec'd at all.
        `reap_later`: return once H has reported the command's code, H's own exit not waited
        for (a thread reaps it); a helper that ends without reporting is waited for."""
        if self.returncode is None and reap_later:
            while self._exit_code is None and not self._ended:
                self._read(None)
            if self._exit_code is not None:
                self.returncode = self._exit_code
                if self.pidfd >= 0:  # the spawner reaps H: its report's end says when
                    _PENDING[self._report] = self.pidfd
                    self._report = self.pidfd = -1
                    self._ended = True
                else:
                    self._close_report()
                    _reap_later(self.pid)
        if self.returncode is None:
            try:
                status = self._wait_spawned() if self.pidfd >= 0 else os.waitpid(self.pid, 0)[1]
                self.returncode = helper.status_code(status)
                while not self._ended and wait_readable(self._report, 0):  # the helper is gone: all is there
                    self._read(0)
            finally:
                self._close_report()
            if os.WIFSIGNALED(status):
                self._reap_orphan()
        for msg in self._messages:
            text = msg.decode(errors="replace").removeprefix("error ")
            if "No such file" in text or "not found" in text:
                raise NotFound(f"exec: {text}")
            raise KernelError(f"exec: {text}")
        return self.returncode

    def _wait_spawned(self) -> int:
        """H's wait status, H being the spawner's child: the spawner's "end" line, sent once it
        reaped H. A report ending without it means the spawner died: H, an orphan, may be ours
        now (we are a subreaper), else its status is lost (taken as killed)."""
        while not self._ended:
            self._read(None)
        if self._end_status is not None:
            return self._end_status
        try:
            found = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED)
        except ChildProcessError:
            found = None
        if found is None or found.si_code != os.CLD_EXITED:
            return (found.si_status if found is not None else signal.SIGKILL) & 0x7F  # a signal's status
        return (found.si_status & 0xFF) << 8

    def _close_report(self) -> None:
        if self._report >= 0:
            os.close(self._report)
            self._report = -1
            self._ended = True
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1

    def __del__(self) -> None:  # never waited for: the report pipe is closed as a socket object would be
        self._close_report()

    def _reap_orphan(self) -> None:
        """H was killed: its command, if it came to us (we are a subreaper), is killed and reaped.
        Only our own child is touched, so a reused PID is never signalled."""
        fields = proc_stat(self.inner_pid) if self.inner_pid else None
        if fields and int(fields[1]) == os.getpid():
            with contextlib.suppress(OSError):
                os.kill(self.inner_pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.inner_pid, 0)

    def kill(self) -> None:
        """End the command. Its helper H then reaps it and exits by itself; H is killed only when
        it has not exited after `HELPER_GRACE` seconds. Killing H at once would race its reap:
        the killed command would go to the nearest subreaper, which may never reap it, and the
        VPS's init cannot finish exiting while a zombie of its PID namespace is left."""
        if not self.inner_pid and self.returncode is None:
            # The helper reports the command's PID right after starting it; killed before that,
            # it would leave the command unknown to `wait`, which reaps it as an orphan.
            with contextlib.suppress(OSError):
                self.command_pid(timeout=5.0)
        if self.returncode is not None:
            return
        fields = proc_stat(self.inner_pid) if self.inner_pid else None
        if fields and int(fields[1]) in (self.pid, os.getpid()):  # still our command, not a reused PID
            with contextlib.suppress(OSError):
                os.kill(self.inner_pid, signal.SIGKILL)
            if self._helper_exited(HELPER_GRACE):
                return
        with contextlib.suppress(OSError, KernelError):
            if self.pidfd >= 0:
                sc.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)

    def _helper_exited(self, timeout: float) -> bool:
        if self.pidfd >= 0:
            return pidfd_exited(self.pidfd, timeout)
        try:
            pidfd = sc.pidfd_open(self.pid)  # H is our unreaped child: its PID is still its own
        except KernelError:
            return True
        try:
            return pidfd_exited(pidfd, timeout)
        finally:
            os.close(pidfd)

    def close(self) -> None:
        for name in ("master", "stdin", "stdout", "stderr"):
            fd = getattr(self, name)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, None)


_UNREAPED: set[int] = set()  # helpers whose report came before their exit, reaped by a thread each
_PENDING: dict[int, int] = {}  # report fd -> pidfd of helpers the spawner reaps, until their report ends


def _reap_later(pid: int) -> None:
    """Reap helper `pid` (our child) now if it has exited, else from a thread of its own that waits
    for it off the caller's path (a thread costs ~0.05 ms; the exit it waits for ~0.3-0.5 ms)."""
    with contextlib.suppress(ChildProcessError):
        if not os.waitpid(pid, os.WNOHANG)[0]:
            _UNREAPED.add(pid)
            _thread.start_new_thread(_reap, (pid,))


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    _UNREAPED.discard(pid)


def reap_helpers(timeout: float = 0.0) -> int:
    """Wait up to `timeout` seconds for the helpers `wait(reap_later=True)` left exiting to be
    reaped (they had only their exit left to do), by us or by the spawner; how many are left."""
    deadline = time.monotonic() + timeout
    while True:
        _forget_reaped()
        if not (_UNREAPED or _PENDING) or time.monotonic() >= deadline:
            return len(_UNREAPED) + len(_PENDING)
        time.sleep(0.001)


def _forget_reaped() -> None:
    """Close the reports of spawner-made helpers that have ended (the spawner reaped H)."""
    if not _PENDING:
        return
    poller = select.poll()
    for fd in list(_PENDING):
        poller.register(fd, 0)  # POLLHUP: every writer closed, the spawner's copy last
    for fd, _ in poller.poll(0):
        pidfd = _PENDING.pop(fd, -1)
        with contextlib.suppress(ChildProcessError):  # a dead spawner's orphan is ours (a subreaper's)
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        for each in (fd, pidfd):
            with contextlib.suppress(OSError):
                os.close(each)


def pid_namespace(pid: int) -> str:
    """The PID namespace of `pid` as its /proc link (`pid:[4026...]`), or "" when gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def unreaped_report() -> str:
    """Plain words on what may keep a dying VPS init from exiting: zombies of nested PID
    namespaces (a zombie's namespace cannot be read, so of any VPS) and who should reap each."""
    stuck = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            status = _proc_status(int(name))
            if status.get("State", "").startswith("Z") and len(status.get("NSpid", "").split()) > 1:
                stuck.append(f"PID {name} (a zombie in a VPS) waits for PID {status.get('PPid')} to reap it")
    return "; ".join(stuck) or "no zombie in a VPS is left: try the stop again"


def _proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as name → value (stripped); empty when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            return {key: value.strip() for key, _, value in (line.partition(":") for line in fh)}
    except OSError:
        return {}


def kill_helpers(init_pid: int) -> list[int]:
    """SIGKILL every enter helper (H) of the VPS whose init is `init_pid`: host processes that
    joined its PID namespace for their children. H is outside the VPS's cgroups, so killing the
    cgroup spares it; while it lives, its child's zombie in the VPS's PID namespace is its to
    reap, and the dying init waits for that reap before it exits — a stop would wait forever
    for a session (a console's login shell, `vzctl enter`) whose helper is not waiting."""
    vps_ns = pid_namespace(init_pid)
    if not vps_ns:
        return []
    killed = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == init_pid:
            continue
        try:
            if (os.readlink(f"/proc/{name}/ns/pid_for_children") == vps_ns
                    and os.readlink(f"/proc/{name}/ns/pid") != vps_ns):
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
        except OSError:
            continue  # gone meanwhile, or a kernel thread
    return killed


def reap_orphans() -> list[int]:
    """Reap our zombie children that a killed helper left us (we are a subreaper): commands of a
    VPS's PID namespace that are not its init (their PID there is not 1). The dying init waits
    for them to be reaped; a VPS init of ours is never touched (its PID there is 1)."""
    reaped = []
    for child in children():
        fields = _proc_status(child)
        nspids = fields.get("NSpid", "").split()
        if fields.get("State", "").startswith("Z") and len(nspids) > 1 and nspids[-1] != "1":
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(child, os.WNOHANG)[0]:
                    reaped.append(child)
    return reaped


def spawn_in(
    pidfd: int,
    cgroup_procs: Sequence[str],
    argv: Sequence[str],
    *,
    home_procs: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str = "/",
    tty: bool = False,
    use_seccomp: bool = True,
    timeout: float = 10.0,
    spawner: Callable[[bytes, list[int]], tuple[int, int] | None] | None = None,
) -> Attached:
    """Start `argv` inside the VPS whose init `pidfd` refers to; return at once.

    `spawner` (`kernel.spawn.start_helper`): sends a request and its descriptors to the helper
    this process's spawner keeps waiting; returns H's (PID, pidfd), or None when no spawner runs
    (then H is forked from this process)."""
    if not argv:
        raise InvalidArgument("exec needs a command")
    full_env = dict(env if env is not None else (helper.TTY_ENV if tty else helper.DEFAULT_ENV))
    report, report_w = os.pipe()
    parent_ends: list[int] = []  # stdin (write end), stdout, stderr (read ends)
    child_ends: list[int] = []
    send_pty = pty_sock = None
    if tty:
        from kernel import fdpass  # the pty master is passed as a descriptor: a socket (~0.2 ms of imports)

        pty_sock, pty_child = fdpass.seqpacket_pair()
        send_pty = helper.PtySender(fdpass.send_fds, pty_child)
    else:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        parent_ends, child_ends = [in_w, out_r, err_r], [in_r, out_w, err_w]
    spawned = None
    if spawner is not None:
        _forget_reaped()
        request = helper.encode_request(argv, full_env, cwd, cgroup_procs, home_procs, use_seccomp, tty)
        try:
            spawned = spawner(request, [pidfd, report_w, *child_ends, *([send_pty.sock.fileno()] if send_pty else [])])
        except BaseException:
            for fd in (report, report_w, *parent_ends, *child_ends):
                os.close(fd)
            for sock in (pty_sock, send_pty.sock if send_pty else None):
                if sock is not None:
                    sock.close()
            raise
    if spawned is None:
        program = seccomp.build() if use_seccomp else b""
        if program:
            seccomp.prepare(program)
        spawned = os.fork(), -1
        if spawned[0] == 0:  # pragma: no cover - runs in the helper
            os.close(report)
            if pty_sock is not None:
                pty_sock.close()
            for fd in parent_ends:
                os.close(fd)
            stdio = tuple(child_ends)
            helper.run(report_w, lambda: helper.enter_and_spawn(pidfd, cgroup_procs, home_procs, argv, full_env, cwd,
                                                                stdio, report_w, send_pty, program))
    os.close(report_w)
    for fd in child_ends:
        os.close(fd)
    attached = Attached(spawned[0], report, spawned[1])
    if pty_sock is None:
        attached.stdin, attached.stdout, attached.stderr = parent_ends
        return attached
    assert send_pty is not None
    send_pty.sock.close()
    attached.master = _receive_pty(pty_sock, timeout, attached)
    return attached


def _receive_pty(sock: fdpass.Socket, timeout: float, attached: Attached) -> int:
    from kernel import fdpass

    sock.settimeout(timeout)
    try:
        msg, fds = fdpass.recv_fds(sock, 16, 1)
    except TimeoutError:
        attached.kill()
        attached.wait()
        raise Timeout("exec: no pty from the VPS") from None
    finally:
        sock.close()
    if msg == b"pty" and fds:
        return fds[0]
    for fd in fds:
        os.close(fd)
    attached.wait()  # raises what the helper reported
    raise KernelError("exec: the VPS gave no pty")


def set_uts_name(pidfd: int, hostname: str) -> None:
    """sethostname() in the VPS's UTS namespace, from a non-dumpable child that joined it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)
            sc.setns(pidfd, sc.CLONE_NEWUSER | sc.CLONE_NEWUTS)
            sc.sethostname(hostname)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise KernelError(f"could not set the hostname {hostname!r} in the VPS")


def run_in(
    pidfd: int,
    cgroup_procs: Sequence[str],
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    cwd: str = "/",
    timeout: float | None = None,
    use_seccomp: bool = True,
    home_procs: Sequence[str] = (),
    spawner: Callable[[bytes, list[int]], tuple[int, int] | None] | None = None,
) -> ExecResult:
    """Run `argv` inside the VPS and capture its output (like subprocess.run)."""
    attached = spawn_in(pidfd, cgroup_procs, argv, home_procs=home_procs, env=env, cwd=cwd, use_seccomp=use_seccomp,
                        spawner=spawner)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        out, err = _communicate(attached, input or b"", deadline)
    except Timeout:
        attached.kill()
        with contextlib.suppress(KernelError):
            attached.wait()
        raise
    finally:
        attached.close()
    return ExecResult(attached.wait(reap_later=True), out, err)


def _communicate(attached: Attached, data: bytes, deadline: float | None) -> tuple[bytes, bytes]:
    import selectors  # here: vzctl exec's path never needs it (issue 4: lean imports)

    assert attached.stdin is not None and attached.stdout is not None and attached.stderr is not None
    chunks: dict[int, list[bytes]] = {attached.stdout: [], attached.stderr: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    in_w = attached.stdin
    attached.stdin = None
    view = memoryview(data)
    if view:
        os.set_blocking(in_w, False)
        sel.register(in_w, selectors.EVENT_WRITE)
    else:
        os.close(in_w)
    try:
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise Timeout("command did not finish in time")
            for key, _ in sel.select(wait):
                fd = key.fd
                if fd == in_w:
                    try:
                        view = view[os.write(in_w, view[:65536]) :]
                    except BrokenPipeError:
                        view = view[:0]
                    if not view:
                        sel.unregister(in_w)
                        os.close(in_w)
                    continue
                chunk = os.read(fd, 65536)
                if chunk:
                    chunks[fd].append(chunk)
                else:
                    sel.unregister(fd)
    finally:
        if in_w in sel.get_map():
            os.close(in_w)
        sel.close()
    return b"".join(chunks[attached.stdout]), b"".join(chunks[attached.stderr])


