"""vzctl's exit codes (OpenVZ's include/vzerror.h numbers) and the mapping from kernel errors."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # collections.abc and typing: vzctl exec's path does without them (issue 4)
if TYPE_CHECKING:
    from collections.abc import Callable

    from worker.cli.config import CliConfig

OK = 0
SETUBC_ERROR = 1  # the kernel refused a beancounter limit
SYSTEM_ERROR = 3
COMMAND_FAILED = 8  # `vzctl exec`: the command returned non-zero
LOCKED = 9
NO_ACCESS = 12  # panel-managed VPS changed without --force
NO_CONFIG = 14  # sample config not found
EXEC_TIMEOUT = 15
BAD_SYNTAX = 20
BAD_VALUE = 21
NOT_RUNNING = 31
RUNNING = 32
STOP_ERROR = 33
NOT_MOUNTED = 40
MOUNTED = 41
NO_PRIVATE = 43  # CT does not exist
PRIVATE_EXISTS = 44  # CT already exists
DQ_SET = 62  # disk quota parameters could not be applied
ERROR_SET_USER_QUOTA = 65  # second-level (user/group) quota could not be set
DQ_UGID_NOTINITIALIZED = 67  # second-level quota is off (quotaugidlimit 0)
GET_QUOTA_USAGE = 68
BAD_HOSTNAME = 70
TEMPLATE_NOT_FOUND = 91


class Fail(Exception):
    """Ends a command with `code` after printing `message` to stderr."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def code_for(exc: Exception) -> int:
    """The exit code for a kernel error that no command-specific check caught first."""
    from kernel import errors

    if isinstance(exc, errors.Busy):
        return LOCKED if "locked" in str(exc) else RUNNING
    if isinstance(exc, errors.Timeout):
        return EXEC_TIMEOUT
    if isinstance(exc, errors.AlreadyExists):
        return PRIVATE_EXISTS
    if isinstance(exc, errors.NotFound):
        return NO_PRIVATE
    if isinstance(exc, errors.InvalidArgument):
        return BAD_VALUE
    return SYSTEM_ERROR


def handled(command: Callable[[], int]) -> int:
    """Run a node command: a `Fail` or a kernel error ends it with its message on stderr and its
    exit code; any other exception is a bug and propagates."""
    try:
        return command()
    except Fail as exc:
        print(exc, file=sys.stderr)
        return exc.code
    except Exception as exc:
        if type(exc).__module__ != "kernel.errors":
            raise
        print(exc, file=sys.stderr)
        return code_for(exc)


def command_main(run: Callable[[list[str], CliConfig], int], argv: list[str] | None) -> int:
    """A node command's `main`: `run(argv, config from the environment)`, errors as `handled`."""
    from worker.cli.config import CliConfig

    args = sys.argv[1:] if argv is None else argv
    return handled(lambda: run(args, CliConfig.from_env()))
