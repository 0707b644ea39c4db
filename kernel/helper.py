"""The exec helper H: entering a running VPS and starting a command there (the caller's side,
`Attached`, `spawn_in` and `run_in`, is kernel/enter.py).

H turns non-dumpable first (so the VPS can neither ptrace it nor open its /proc files,
/proc/self/exe included), joins the VPS's cgroup, then joins all of its namespaces at once
through a pidfd of init — user namespace included, so it holds no host capability — and
starts the command, which is inside the VPS's PID namespace: every descriptor above 2
closed, the VPS's seccomp filter loaded, exec'd by its path inside the VPS, so no host binary
is ever exec'd in the VPS's mount namespace. H stays in the host PID namespace (invisible to
the VPS) only to pass the command's exit status back.

H takes the init's rlimits (numfile) and I/O priority first, so the command runs under them
like the init's own children. H joins the VPS's cgroups only for the command's start and
leaves them at once (through cgroup.procs descriptors opened before it gave up its host
privileges): a forked Python process is large, and inside a small memory cgroup the OOM
killer would pick H instead of the VPS's own processes, orphaning the command.

With a terminal, H forks H2, which opens a new pty from the VPS's own devpts (/dev/ptmx
inside, the peer through TIOCGPTPEER, no path lookup), makes it its controlling terminal,
and hands the master to the caller: the caller's own terminal never enters the VPS (TIOCSTI
could type into it).

H is forked by the caller (`spawn_in`), or ahead of the request by the caller's spawner
(kernel/spawn.py: `warm_up`, then `helper_main`). A caller that ends with its command
(`vzctl exec` run as a program, no terminal) is its own H (`exec_here`): it takes H's steps
itself and the command is its child, so no helper is forked or has to exit. From `setns` on,
H and such a caller can import nothing: their mount namespace is the VPS's, and a module
read from there would run beside the caller's stdio.
"""

from __future__ import annotations

import _signal as signal  # the C module: signal.py builds enums (~0.4 ms of vzctl exec's start)
import contextlib
import fcntl
import os
import stat
import sys

from kernel import seccomp
from kernel import syscalls as sc
from kernel.errors import InvalidArgument, KernelError, NotFound
from kernel.running import INIT_PATH, NAMESPACES, read_small

TYPE_CHECKING = False  # typing and collections.abc: imports vzctl exec does not need
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from kernel import fdpass

DEFAULT_ENV = {"PATH": INIT_PATH, "HOME": "/root", "TERM": "dumb", "container": "ctpanel"}
TTY_ENV = {**DEFAULT_ENV, "TERM": "xterm-256color"}

_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441
_TIOCSCTTY = 0x540E  # termios.TIOCSCTTY, without importing termios on vzctl exec's path
_PTMX = (5, 2)


def status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def own_procs(hierarchies: Mapping[str, str]) -> list[str]:
    """The cgroup.procs files of the calling process's own cgroups, for each hierarchy
    (name → mount point, as `CgroupDriver.hierarchies()`): where the helper returns to."""
    own: dict[str, str] = {}
    for line in read_small("/proc/self/cgroup").splitlines():
        _, names, path = line.split(":", 2)
        own[names or "unified"] = path
    return [os.path.join(mount + own[name], "cgroup.procs") for name, mount in hierarchies.items() if name in own]


def encode_request(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    cgroup_procs: Sequence[str],
    home_procs: Sequence[str],
    use_seccomp: bool,
    tty: bool,
) -> bytes:
    """An exec request for the spawner (`helper_main` runs it in the helper it forks)."""
    import json  # only callers with a spawner (a Runtime) come here, not vzctl exec

    return json.dumps({"argv": list(argv), "env": env, "cwd": cwd, "procs": list(cgroup_procs),
                       "home": list(home_procs), "seccomp": use_seccomp, "tty": tty}).encode()


class PtySender:
    """How the command's helper hands the pty master over (its socket end is closed by the caller
    after the fork and by the helper once the command's process is forked, so a helper that dies
    before sending ends the caller's wait at once)."""

    def __init__(self, send_fds: Callable[[fdpass.Socket, bytes, list[int]], None], sock: fdpass.Socket) -> None:
        self.send_fds = send_fds
        self.sock = sock

    def __call__(self, master: int) -> None:  # pragma: no cover - runs inside the VPS
        self.send_fds(self.sock, b"pty", [master])


def helper_main(request: dict, fds: list[int], programs: dict[bool, bytes]) -> None:  # pragma: no cover - helper
    """H made by the spawner, for `request` (spawn_in's, decoded) with its descriptors: the
    init's pidfd, the report pipe, then the command's stdin, stdout, stderr or the pty socket.
    `programs`: the spawner's seccomp programs (prepared), by `request["seccomp"]`. Never returns."""
    try:
        pidfd, report, *rest = fds
        send_pty = None
        if request["tty"]:
            from kernel import fdpass

            send_pty = PtySender(fdpass.send_fds, fdpass.Socket(fileno=rest.pop()))
        run(report, lambda: enter_and_spawn(pidfd, request["procs"], request["home"], request["argv"], request["env"],
                                            request["cwd"], tuple(rest), report, send_pty,
                                            programs[bool(request["seccomp"])]))
    finally:
        os._exit(126)


def warm_up() -> None:  # pragma: no cover - runs in the spawner's waiting helper
    """What a helper forked ahead of its request does before it waits: the code of its path
    run once where it harms nothing (a request decoded, limits read, harmless ctypes calls),
    so the copy-on-write faults of the pages it touches are taken before the request comes
    rather than on the exec's path (~0.3 ms)."""
    import json

    own = ["/proc/self/cgroup"]
    json.loads(encode_request(["true"], dict(DEFAULT_ENV), "/", own, own, True, False))
    _limits("/proc/self/limits")
    read_small("/proc/self/fdinfo/0")
    sc.prctl(sc.PR_GET_NO_NEW_PRIVS)
    sc.prlimit(0, 0)
    sc.ioprio_get(0)
    os.close(sc.pidfd_open(os.getpid()))
    os.access(os.getcwd(), os.X_OK)
    os.path.isdir("/")
    status_code(0)


def run(report: int, start: Callable[[], int]) -> None:  # pragma: no cover - runs in the helper
    """H's life: `start` (`enter_and_spawn` with its arguments), then the command's PID and exit
    code on the `report` pipe. Never returns."""
    code = 126
    try:
        child = start()
        _report(report, f"pid {child}")
        _, status = os.waitpid(child, 0)
        code = status_code(status)
        _report(report, f"exit {code}")  # the caller need not wait for this process's teardown
    except BaseException as exc:
        _report(report, f"error {exc}")
    os._exit(code)


def exec_here(
    pidfd: int,
    cgroup_procs: Sequence[str],
    argv: Sequence[str],
    *,
    home_procs: Sequence[str] = (),
    use_seccomp: bool = True,
) -> tuple[int, int, int, int]:
    """Start `argv` inside the VPS from this very process, as its helper H would: (the command's
    PID, its stdin's write end, its stdout's and stderr's read ends). Wait with `wait_command`.

    Only for a process that ends with the command (`vzctl exec` run as a program, without a
    terminal): no H is forked, and none has to exit before the caller learns the code (~1.8 ms
    of the CLI's 4-6 ms over a bare interpreter, issue 4). This process enters the VPS for
    good: non-dumpable, in the VPS's user and other namespaces as its root, under its seccomp
    filter and its init's rlimits; it leaves the VPS's cgroups once the command runs. It can
    import nothing more, nor read a traceback's source (`_read_no_host_paths`)."""
    if not argv:
        raise InvalidArgument("exec needs a command")
    program = seccomp.build() if use_seccomp else b""
    if program:
        seccomp.prepare(program)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        child = enter_and_spawn(pidfd, cgroup_procs, home_procs, argv, dict(DEFAULT_ENV), "/", (in_r, out_w, err_w),
                                -1, None, program)
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):  # enter_and_spawn closes the child's ends only once done
            os.close(fd)
        raise
    return child, in_w, out_r, err_r


def wait_command(pid: int, *, kill: bool = False) -> int:
    """The exit code (128 + signal when killed) of a command `exec_here` started; `kill`: end it
    first (its caller is failing). The command is this process's child: its PID is not reused."""
    if kill:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return status_code(os.waitpid(pid, 0)[1])


class _NoImports:
    """The only import finder of a process inside a VPS's mount namespace: a module not yet loaded
    would be read from the VPS's files, and run by a process that holds the caller's stdio."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        raise ImportError(f"{name}: no imports once inside a VPS")


def _plain_excepthook(kind: type[BaseException], exc: BaseException, tb: object) -> None:
    """An uncaught exception once inside: its type and message only. A traceback's source lines
    would be read from the VPS's files at the host's paths (a FIFO there would hang the exit)."""
    with contextlib.suppress(OSError):
        os.write(2, f"{kind.__name__}: {exc}\n".encode(errors="replace"))


def _read_no_host_paths() -> None:  # pragma: no cover - runs in the helper, or in exec_here's caller
    """Before setns: from then on a path names the VPS's file, so nothing may be read by a path
    this process would have read on the host: no imports, no traceback source lines."""
    sys.meta_path[:] = [_NoImports]
    sys.excepthook = _plain_excepthook


def enter_and_spawn(  # pragma: no cover - runs in the helper, or in exec_here's caller
    pidfd: int,
    cgroup_procs: Sequence[str],
    home_procs: Sequence[str],
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    stdio: tuple[int, ...],
    report: int,
    send_pty: PtySender | None,
    program: bytes,
) -> int:
    """Enter the VPS (module docstring) and start the command; its host PID. `stdio` and the
    cgroup descriptors are closed; `report` carries the pty child's errors."""
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    join = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in cgroup_procs]
    leave = [os.open(path, os.O_WRONLY | os.O_CLOEXEC) for path in home_procs]
    _inherit_from_init(pidfd)
    _read_no_host_paths()
    sc.setns(pidfd, NAMESPACES)
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)
    for fd in join:  # the descriptors keep the host credentials they were opened with
        os.write(fd, b"0\n")
    try:
        if send_pty is None:
            child = _spawn_command(argv, env, cwd, stdio, program)
        else:
            child = os.fork()
            if child == 0:
                _command_on_pty(argv, env, cwd, report, send_pty, program)
            send_pty.sock.close()
    finally:
        for fd in leave:
            with contextlib.suppress(OSError):
                os.write(fd, b"0\n")
    for fd in (*stdio, *join, *leave):
        os.close(fd)
    return child


def _report(fd: int, line: str) -> None:  # pragma: no cover - runs in the helpers
    """One line to the caller (under PIPE_BUF, so written at once); a caller gone is no error."""
    with contextlib.suppress(OSError):
        os.write(fd, line.replace("\n", " ").encode(errors="replace")[:4000] + b"\n")


def _inherit_from_init(pidfd: int) -> None:  # pragma: no cover - runs in the helper
    """Take the rlimits and I/O priority of the init behind `pidfd` (what its children have).
    A hard limit above the helper's own cannot be raised (no CAP_SYS_RESOURCE): capped there.
    Read from /proc/PID/limits (two reads): thirty-two prlimit calls through
    ctypes cost this forked helper ~0.2 ms more, most of it copying the pages they touch."""
    pid = int(read_small(f"/proc/self/fdinfo/{pidfd}").partition("\nPid:")[2].split()[0])
    own = _limits("/proc/self/limits")
    for res, (soft, hard) in enumerate(_limits(f"/proc/{pid}/limits")):
        hard = min(hard, own[res][1])  # unsigned: RLIM_INFINITY is the largest value
        soft = min(soft, hard)
        if (soft, hard) != own[res]:
            sc.prlimit(0, res, (soft, hard))
    sc.ioprio_set(0, sc.ioprio_get(pid))


def _limits(path: str) -> list[tuple[int, int]]:  # pragma: no cover - runs in the helper
    """(soft, hard) of every resource, in RLIMIT order, from a /proc/PID/limits file: the kernel
    prints one line per resource in that order, in fixed columns ("%-25s %-20s %-20s")."""
    found = []
    for line in read_small(path).split("\n")[1 : 1 + sc.RLIM_NLIMITS]:
        soft, hard = line[26:46].strip(), line[47:67].strip()
        found.append((sc.RLIM_INFINITY if soft == "unlimited" else int(soft),
                      sc.RLIM_INFINITY if hard == "unlimited" else int(hard)))
    return found


def _which(name: str, env: Mapping[str, str]) -> str:  # pragma: no cover - runs inside the VPS
    """`name` looked up on the command's own PATH, inside the VPS (as execvpe would)."""
    if "/" in name:
        return name
    for directory in env.get("PATH", INIT_PATH).split(":"):
        candidate = f"{directory or '.'}/{name}"  # not os.path.join: fewer pages for the forked helper to copy
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    raise NotFound(f"{name}: No such file or directory")


def _spawn_command(  # pragma: no cover - runs in the helper, inside the VPS's namespaces
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    stdio: tuple[int, ...],
    program: bytes,
) -> int:
    """The command without a second Python fork: the helper takes the VPS's cwd, keyring and
    seccomp filter itself (the child inherits them) and posix_spawn (vfork) execs the command."""
    os.chdir(cwd)
    if not os.getcwd().startswith("/"):
        raise KernelError("working directory is outside the VPS")
    path = _which(argv[0], env)
    sc.join_session_keyring()
    sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    if program:
        seccomp.install(program)
    return os.posix_spawn(
        path,
        list(argv),
        env,
        file_actions=[(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(stdio)],
        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT),
        setsigmask=(),
    )


def _open_pty() -> tuple[int, int]:  # pragma: no cover - runs inside the VPS
    """A new pty pair from the VPS's own devpts; refuses anything but a real ptmx."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    st = os.fstat(master)
    if not stat.S_ISCHR(st.st_mode) or (os.major(st.st_rdev), os.minor(st.st_rdev)) != _PTMX:
        raise InvalidArgument("/dev/ptmx in the VPS is not the pty multiplexer")
    os.set_blocking(master, True)
    fcntl.ioctl(master, _TIOCSPTLCK, bytes(4))  # int 0: unlock
    slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, slave


def _command_on_pty(  # pragma: no cover - runs inside the VPS
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    report: int,
    send_pty: PtySender,
    program: bytes,
) -> None:
    try:
        os.chdir(cwd)
        if not os.getcwd().startswith("/"):
            raise KernelError("working directory is outside the VPS")
        master, slave = _open_pty()
        os.setsid()
        fcntl.ioctl(slave, _TIOCSCTTY, 0)
        for target in (0, 1, 2):
            os.dup2(slave, target)
        os.close(slave)
        send_pty(master)
        os.close(master)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        sc.join_session_keyring()
        sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
        if program:
            seccomp.install(program)
        os.execve(_which(argv[0], env), list(argv), env)  # noqa: S606 - the VPS's binary (execvpe imports)
    except BaseException as exc:
        _report(report, f"error {exc}")
    os._exit(127)
