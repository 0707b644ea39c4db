"""vzctl runs the node worker's wired runtime: a start gets the network and beancounters the
panel's start would (worker.vps.wired), not a bare runtime's loopback-only, unlimited VPS."""

from __future__ import annotations

import dataclasses
import os

import pytest

from kernel import statefile, ubc
from kernel.runtime import Runtime
from worker import vps

pytestmark = pytest.mark.kernel
MiB = 1 << 20


def test_vzctl_start_applies_network_and_beancounters(run, ctid: int, cli_runtime: Runtime) -> None:
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "busybox")[0] == 0
    # What the node worker's converge stores for a panel-managed VPS; vzctl's start must apply it.
    path = vps.beancounters_path(cli_runtime, ctid)
    statefile.ensure_dir(os.path.dirname(path))
    statefile.write_json(path, dataclasses.asdict(ubc.Limits(ram=64 * MiB)))
    assert run("vzctl", "start", c)[0] == 0
    memory = cli_runtime.cgroups.controller_dir(ctid, "memory")
    limit_file = "memory.max" if cli_runtime.cgroups.version == 2 else "memory.limit_in_bytes"
    with open(os.path.join(memory, limit_file), encoding="ascii") as fh:
        assert int(fh.read()) == 64 * MiB
    code, out, _ = run("vzctl", "exec2", c, "ls /sys/class/net")
    assert code == 0 and "venet0" in out.split()  # the network stage ran
    assert run("vzctl", "stop", c)[0] == 0
    assert run("vzctl", "destroy", c)[0] == 0
    assert not os.path.exists(path)  # destroy removes the saved beancounters


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_vzctl_runs_debian_12_with_its_network(run, ctid: int) -> None:
    """The template is imported from the machine's cache (built there by the first run); systemd
    boots to "running" with the wired network stage (venet0 and networkd's file from the node)."""
    c = str(ctid)
    assert run("vzctl", "create", c, "--ostemplate", "debian-12", "--hostname", "deb.example.com")[0] == 0
    assert run("vzctl", "start", c)[0] == 0
    state = ""
    for _ in range(600):  # until systemd's manager answers: a bound, not a timing assertion
        code, state, err = run("vzctl", "exec2", c, "systemctl is-system-running --wait")
        if state.strip() != "offline" and "Failed to connect to bus" not in err:  # systemd not up yet
            break
    assert state.strip() == "running"
    code, out, _ = run("vzctl", "exec2", c, ". /etc/os-release; echo $ID $VERSION_ID; ls /sys/class/net")
    assert code == 0 and out.split()[:2] == ["debian", "12"] and "venet0" in out.split()
    assert run("vzctl", "stop", c)[0] == 0
    assert run("vzctl", "destroy", c)[0] == 0
