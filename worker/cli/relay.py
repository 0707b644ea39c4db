"""Relaying the caller's stdio to a command running inside a VPS (`vzctl exec`, `enter`).

`pipes` (`vzctl exec` without a terminal) polls with `select.poll` and imports no more:
selectors, signal, termios and tty cost about 1.5 ms together, and `vzctl exec` must
start within a few milliseconds of a bare interpreter (issue 4). The terminal path
imports them when it runs.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import struct


def _copy_winsize(src: int, dst: int) -> None:
    import termios

    with contextlib.suppress(OSError):
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pty(master: int, stdin: int = 0, stdout: int = 1, *, detach: bytes | None = None, banner: bytes = b"") -> None:
    """Copy `stdin` → the VPS's pty master (or a console socket) → `stdout` until the VPS side
    hangs up, or until the caller types `detach` (then, and at the end of its input, return).

    The caller's terminal is only put in raw mode and read from; it never enters the VPS.
    `banner` is printed once the terminal is raw (what the caller types next is not line-buffered).
    """
    import selectors
    import signal
    import termios
    import tty

    saved = None
    if os.isatty(stdin):
        saved = termios.tcgetattr(stdin)
        _copy_winsize(stdin, master)
        tty.setraw(stdin)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(stdin, master))
    _write_all(stdout, banner)
    sel = selectors.PollSelector()
    sel.register(master, selectors.EVENT_READ)
    with contextlib.suppress(ValueError, OSError):
        sel.register(stdin, selectors.EVENT_READ)
    try:
        while True:
            for key, _ in sel.select():
                try:
                    data = os.read(key.fd, 65536)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
                    data = b""  # EIO: every slave end inside the VPS is closed
                if key.fd == master:
                    if not data:
                        return
                    _write_all(stdout, data)
                elif data:
                    if detach is not None and detach in data:
                        _write_all(master, data.partition(detach)[0])
                        return
                    _write_all(master, data)
                else:
                    if detach is not None:
                        return
                    sel.unregister(stdin)
                    if saved is None:
                        _write_all(master, b"\x04")  # end of piped input: EOF for the VPS's line discipline
    finally:
        sel.close()
        if saved is not None:
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def pipes(child_stdin: int, child_stdout: int, child_stderr: int) -> None:
    """Copy fd 0 → the command's stdin and its stdout/stderr → fds 1/2 until both close."""
    poller = select.poll()
    outputs = {child_stdout: 1, child_stderr: 2}
    for fd in outputs:
        poller.register(fd, select.POLLIN)
    pending = b""
    stdin_open = True
    poller.register(0, select.POLLIN)
    try:
        while outputs:
            for fd, _ in poller.poll():
                if fd in outputs:
                    data = os.read(fd, 65536)
                    if data:
                        _write_all(outputs[fd], data)
                    else:
                        poller.unregister(fd)
                        del outputs[fd]
                elif fd == 0:
                    pending = os.read(0, 65536)
                    poller.unregister(0)
                    if pending:
                        poller.register(child_stdin, select.POLLOUT)
                    else:
                        stdin_open = False
                        os.close(child_stdin)
                else:
                    try:
                        pending = pending[os.write(child_stdin, pending) :]
                    except BrokenPipeError:
                        pending, stdin_open = b"", False
                        poller.unregister(child_stdin)
                        os.close(child_stdin)
                        continue
                    if not pending:
                        poller.unregister(child_stdin)
                        poller.register(0, select.POLLIN)
    finally:
        if stdin_open:
            with contextlib.suppress(OSError):
                os.close(child_stdin)
