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


def test_a_module_planted_by_the_vps_never_runs_in_the_process_that_entered(runtime: Runtime, make_vps) -> None:
    """After exec_here the caller is in the VPS's mount namespace, holding the caller's stdio: a
    module it imports from then on would be the VPS's file at that path. The VPS plants one on
    the caller's own sys.path; importing it must fail, and its code must not have run."""
    ctid = make_vps()
    where = next(p for p in sys.path if p.startswith("/") and os.path.isdir(p))
    plant = f"mkdir -p '{where}' && echo 'open(\"{MARK}\", \"w\").close()' > '{where}/{PLANTED}.py'"
    assert runtime.exec(ctid, ["sh", "-c", plant]).returncode == 0
    init_pid = runtime.status(ctid).init_pid
    assert init_pid
    procs = [os.path.join(p, "cgroup.procs") for p in runtime.cgroups.paths(ctid).inner.values()]
    home = helper.own_procs(runtime.cgroups.hierarchies())
    report_r, report_w = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the test's own child, which enters the VPS for good
        outcome = b"no error"
        try:
            pidfd = os.pidfd_open(init_pid)
            command, stdin, stdout, stderr = helper.exec_here(pidfd, procs, ["true"], home_procs=home)
            for fd in (stdin, stdout, stderr, pidfd):
                os.close(fd)
            outcome = b"command %d " % helper.wait_command(command)
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
    try:
        outcome = os.read(report_r, 4096).decode()
    finally:
        os.close(report_r)
        os.waitpid(child, 0)
    assert outcome == f"command 0 {PLANTED}: no imports once inside a VPS", outcome
    assert runtime.exec(ctid, ["test", "-e", MARK]).returncode == 1  # the planted code never ran
