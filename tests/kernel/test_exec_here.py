"""kernel.helper.exec_here: the calling process enters the VPS itself (`vzctl exec` run as a program)."""

from __future__ import annotations

import os
import sys

import pytest

from kernel import helper
from kernel.runtime import Runtime

pytestmark = pytest.mark.kernel

PLANTED = "ctpanel_planted_by_the_vps"
MARK = "/planted-module-ran"
SOURCE_MARK = "planted source line"


def test_a_module_planted_by_the_vps_never_runs_in_the_process_that_entered(runtime: Runtime, make_vps) -> None:
    """After exec_here the caller is in the VPS's mount namespace, holding the caller's stdio: a
    module it imports from then on would be the VPS's file at that path. The VPS plants one on
    the caller's own sys.path; importing it must fail, and its code must not have run. So must
    an uncaught exception's traceback: the VPS plants its own text at this test file's path,
    and the traceback printed to the caller's stderr must not show it."""
    ctid = make_vps()
    where = next(p for p in sys.path if p.startswith("/") and os.path.isdir(p))
    source = os.path.abspath(__file__)
    plant = (f"mkdir -p '{where}' '{os.path.dirname(source)}' && echo 'open(\"{MARK}\", \"w\").close()' > "
             f"'{where}/{PLANTED}.py' && yes '{SOURCE_MARK}' | head -200 > '{source}'")
    assert runtime.exec(ctid, ["sh", "-c", plant]).returncode == 0
    init_pid = runtime.status(ctid).init_pid
    assert init_pid
    procs = [os.path.join(p, "cgroup.procs") for p in runtime.cgroups.paths(ctid).inner.values()]
    home = helper.own_procs(runtime.cgroups.hierarchies())
    report_r, report_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the test's own child, which enters the VPS for good
        outcome = b"no error"
        try:
            os.dup2(stderr_w, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)  # not pytest's capture: where a traceback goes
            pidfd = os.pidfd_open(init_pid)
            command, stdin, stdout, stderr = helper.exec_here(pidfd, procs, ["true"], home_procs=home)
            for fd in (stdin, stdout, stderr, pidfd):
                os.close(fd)
            outcome = b"command %d " % helper.wait_command(command)
            try:
                raise RuntimeError("uncaught")
            except RuntimeError as exc:
                sys.excepthook(type(exc), exc, exc.__traceback__)
            sys.stderr.flush()
            __import__(PLANTED)
            outcome += b"imported"
        except ImportError as exc:
            outcome += str(exc).encode()
        except BaseException as exc:
            outcome += repr(exc).encode()
        finally:
            os.write(report_w, outcome)
            os._exit(0)
    os.close(report_w)
    os.close(stderr_w)
    try:
        outcome = os.read(report_r, 4096).decode()
        printed = os.read(stderr_r, 65536).decode(errors="replace")
    finally:
        os.close(report_r)
        os.close(stderr_r)
        os.waitpid(child, 0)
    assert outcome == f"command 0 {PLANTED}: no imports once inside a VPS", outcome
    assert runtime.exec(ctid, ["test", "-e", MARK]).returncode == 1  # the planted code never ran
    assert "RuntimeError: uncaught" in printed and SOURCE_MARK not in printed, printed
