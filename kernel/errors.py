"""Typed errors raised by kernel/.

Every failure of a syscall or a tool surfaces as a `KernelError` subclass
chosen from the errno, so callers (the node worker, the CLI) can map it to
an exit code or a message a customer can act on without parsing strings.
"""

from __future__ import annotations

import errno as _errno
import os


class KernelError(Exception):
    """A kernel operation failed. `errno` is set when the kernel said why."""

    code = "kernel.error"

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None):
        super().__init__(message)
        self.errno = errno
        self.path = path

    def __str__(self) -> str:
        text = super().__str__()
        if self.errno is not None:
            text = f"{text}: {os.strerror(self.errno)} [{_errno.errorcode.get(self.errno, self.errno)}]"
        if self.path:
            text = f"{text} ({self.path})"
        return text


class NotFound(KernelError):
    code = "kernel.not_found"


class AlreadyExists(KernelError):
    code = "kernel.exists"


class PermissionDenied(KernelError):
    code = "kernel.permission"


class Busy(KernelError):
    code = "kernel.busy"


class NoSpace(KernelError):
    code = "kernel.no_space"


class LimitReached(KernelError):
    code = "kernel.limit"


class InvalidArgument(KernelError):
    code = "kernel.invalid"


class NotSupported(KernelError):
    """The kernel, a driver or this host lacks the feature."""

    code = "kernel.not_supported"


class Timeout(KernelError):
    code = "kernel.timeout"


class CommandFailed(KernelError):
    """A command-line tool exited non-zero; `stderr` holds what it said."""

    code = "kernel.command"

    def __init__(self, message: str, *, returncode: int, stderr: str = "", errno: int | None = None):
        super().__init__(message, errno=errno)
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self) -> str:
        text = f"{super().__str__()} (exit {self.returncode})"
        tail = self.stderr.strip().splitlines()[-3:]
        return f"{text}: {' / '.join(tail)}" if tail else text


_BY_ERRNO: dict[int, type[KernelError]] = {
    _errno.ENOENT: NotFound,
    _errno.ESRCH: NotFound,
    _errno.ENODEV: NotFound,
    _errno.ENXIO: NotFound,
    _errno.EEXIST: AlreadyExists,
    _errno.EPERM: PermissionDenied,
    _errno.EACCES: PermissionDenied,
    _errno.EROFS: PermissionDenied,
    _errno.EBUSY: Busy,
    _errno.EAGAIN: Busy,
    _errno.ENOSPC: NoSpace,
    _errno.EDQUOT: NoSpace,
    _errno.EMFILE: LimitReached,
    _errno.ENFILE: LimitReached,
    _errno.ENOMEM: LimitReached,
    _errno.EINVAL: InvalidArgument,
    _errno.ENAMETOOLONG: InvalidArgument,
    _errno.ELOOP: InvalidArgument,
    _errno.EXDEV: InvalidArgument,
    _errno.ENOSYS: NotSupported,
    _errno.EOPNOTSUPP: NotSupported,
    _errno.EPROTONOSUPPORT: NotSupported,
    _errno.ETIMEDOUT: Timeout,
}


def from_errno(err: int, message: str, path: str | None = None) -> KernelError:
    """The `KernelError` subclass for an errno value."""
    return _BY_ERRNO.get(err, KernelError)(message, errno=err, path=path)


def from_oserror(exc: OSError, message: str) -> KernelError:
    """Wrap an OSError (keep it as __cause__ with `raise ... from exc`)."""
    if exc.errno is None:
        return KernelError(f"{message}: {exc}")
    return from_errno(exc.errno, message, exc.filename if isinstance(exc.filename, str) else None)
