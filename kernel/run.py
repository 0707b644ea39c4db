"""The one way kernel/ runs a command-line tool: an argument list, never a shell."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kernel.errors import CommandFailed, NotFound, Timeout

# Tools live in sbin on Debian; a root cron or service may have a thin PATH.
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    *,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run `args` and return its output; raise `CommandFailed` on a non-zero exit.

    The environment is minimal (PATH, LANG=C) unless `env` adds to it, so a
    tool's messages are stable and nothing of the caller's leaks into it.
    Descriptors above 2 are not inherited.
    """
    argv = tuple(str(a) for a in args)
    if not argv:
        raise ValueError("run() needs a command")
    full_env = {"PATH": _PATH, "LANG": "C", "LC_ALL": "C"}
    if env:
        full_env.update(env)
    text = not isinstance(input, bytes)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=text,
            timeout=timeout,
            env=full_env,
            close_fds=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NotFound(f"command not found: {argv[0]}", path=argv[0]) from exc
    except subprocess.TimeoutExpired as exc:
        raise Timeout(f"{argv[0]} did not finish within {timeout:g} s") from exc
    out = proc.stdout if text else proc.stdout.decode(errors="replace")
    err = proc.stderr if text else proc.stderr.decode(errors="replace")
    if check and proc.returncode != 0:
        raise CommandFailed(f"{os.path.basename(argv[0])} failed", returncode=proc.returncode, stderr=err)
    return Completed(argv, proc.returncode, out, err)


def background(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """Start a long-running tool (a node daemon such as lxcfs) with the same minimal environment;
    its output goes to the caller's stderr. The caller owns the process (poll, terminate, wait).
    `pass_fds`: descriptors it inherits (at the same numbers)."""
    argv = tuple(str(a) for a in args)
    full_env = {"PATH": _PATH, "LANG": "C", "LC_ALL": "C", **(env or {})}
    try:
        return subprocess.Popen(argv, env=full_env, close_fds=True, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, pass_fds=tuple(pass_fds))
    except FileNotFoundError as exc:
        raise NotFound(f"command not found: {argv[0]}", path=argv[0]) from exc
