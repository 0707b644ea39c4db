"""Running a command inside a running VPS (`vzctl exec`).

The helper H forked from the caller turns non-dumpable first (so the VPS
can neither ptrace it nor open its /proc files, /proc/self/exe included),
joins the VPS's cgroup, then joins all of its namespaces at once through a
pidfd of init — user namespace included, so it holds no host capability —
and forks H2, which is inside the VPS's PID namespace. H2 closes every
descriptor above 2, loads the VPS's seccomp filter and execs the command by
its path inside the VPS: no host binary is ever exec'd in the VPS's mount
namespace. H stays in the host PID namespace (invisible to the VPS) only to
pass H2's exit status back.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kernel import seccomp, spawn
from kernel import syscalls as sc
from kernel.errors import KernelError, NotFound, Timeout

DEFAULT_ENV = {"PATH": spawn.INIT_PATH, "HOME": "/root", "TERM": "dumb", "container": "ctpanel"}


@dataclass(frozen=True)
class ExecResult:
    returncode: int  # the command's exit code, or 128+N when killed by signal N
    stdout: bytes
    stderr: bytes


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


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
) -> ExecResult:
    """Run `argv` inside the VPS whose init `pidfd` refers to; capture its output."""
    if not argv:
        raise ValueError("run_in() needs a command")
    program = seccomp.build() if use_seccomp else b""
    full_env = dict(DEFAULT_ENV if env is None else env)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the helper
        for fd in (in_w, out_r, err_r, info_r):
            os.close(fd)
        _helper(pidfd, cgroup_procs, argv, full_env, cwd, (in_r, out_w, err_w), info_w, program)
    for fd in (in_r, out_w, err_w, info_w):
        os.close(fd)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        out, err, info = _communicate(in_w, out_r, err_r, info_r, input or b"", deadline)
    except Timeout:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    lines = info.decode(errors="replace").splitlines()
    for line in lines:
        if line.startswith("error "):
            raise NotFound(f"exec {argv[0]}: {line[6:]}") if "No such file" in line else KernelError(
                f"exec {argv[0]}: {line[6:]}"
            )
    return ExecResult(_status_code(status), out, err)


def _communicate(
    in_w: int, out_r: int, err_r: int, info_r: int, data: bytes, deadline: float | None
) -> tuple[bytes, bytes, bytes]:
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: [], info_r: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
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
                    os.close(fd)
    finally:
        for key in list(sel.get_map().values()):
            with contextlib.suppress(OSError):
                os.close(key.fd)
        sel.close()
    return b"".join(chunks[out_r]), b"".join(chunks[err_r]), b"".join(chunks[info_r])


def _helper(  # pragma: no cover - runs in the helper
    pidfd: int,
    cgroup_procs: Sequence[str],
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    stdio: tuple[int, int, int],
    info_w: int,
    program: bytes,
) -> None:
    code = 126
    try:
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        for path in cgroup_procs:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0\n")
            finally:
                os.close(fd)
        sc.setns(pidfd, spawn.NAMESPACES)
        os.setresgid(0, 0, 0)
        os.setgroups([])
        os.setresuid(0, 0, 0)
        child = os.fork()
        if child == 0:
            _command(argv, env, cwd, stdio, info_w, program)
        for fd in stdio:
            os.close(fd)
        os.write(info_w, b"pid %d\n" % child)
        os.close(info_w)
        _, status = os.waitpid(child, 0)
        code = _status_code(status)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(info_w, f"error {exc}\n".encode())
    os._exit(code)


def _command(  # pragma: no cover - runs inside the VPS
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str,
    stdio: tuple[int, int, int],
    info_w: int,
    program: bytes,
) -> None:
    try:
        os.chdir(cwd)
        if not os.getcwd().startswith("/"):
            raise KernelError("working directory is outside the VPS")
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        sc.join_session_keyring()
        os.set_inheritable(info_w, False)
        sc.close_range(3, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
        if program:
            seccomp.install(program)
        os.execvpe(argv[0], list(argv), env)  # noqa: S606 - the VPS's own binary, by design
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(info_w, f"error {exc}\n".encode())
    os._exit(127)
