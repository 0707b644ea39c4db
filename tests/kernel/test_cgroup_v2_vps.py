"""A VPS on the cgroup v2 driver: cgroup namespace, delegated inner cgroup, limits out of reach.

Production nodes are pure v2; on this hybrid host the controller-less cgroup2
mount stands in (the VM tier repeats this on a real v2-only kernel).
"""

from __future__ import annotations

import contextlib
import os

import pytest

from kernel import cgroups
from kernel.config import NodeConfig
from kernel.runtime import CreateSpec, Runtime
from tests.kernel import leftovers

pytestmark = pytest.mark.kernel


@pytest.fixture
def v2_runtime(node_config: NodeConfig, subreaper, runtime):
    with open("/proc/self/mountinfo") as fh:
        pure, _, hybrid = cgroups.parse_mounts(fh.read())
    mount = pure or hybrid
    if not mount:
        pytest.fail("this host has no cgroup2 mount; the kernel tier needs one (see docs/runtime.md)")
    prefix = f"{node_config.cgroup_prefix}-v2"
    rt = Runtime(node_config, cgroup_driver=cgroups.V2Driver(prefix, mount))
    yield rt
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(mount, prefix))


def test_vps_sees_only_its_delegated_cgroup(v2_runtime):
    rt = v2_runtime
    ctid = 980
    try:
        rt.create(CreateSpec(ctid=ctid, template="busybox"))
        rt.start(ctid)
        outer, inner = rt.cgroups.paths(ctid).outer["unified"], rt.cgroups.paths(ctid).inner["unified"]
        script = (
            "grep ^0:: /proc/self/cgroup; "
            "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; "
            "mkdir /sys/fs/cgroup/app && echo $$ > /sys/fs/cgroup/app/cgroup.procs && echo moved; "
            "echo 1 > /sys/fs/cgroup/cgroup.freeze 2>/dev/null && echo froze-itself; "
            "grep ^0:: /proc/self/cgroup"
        )
        result = rt.exec(ctid, ["sh", "-c", script], timeout=30)
        lines = result.stdout.decode().split()
        assert lines[0] == "0::/"  # the inner cgroup is the root of its cgroup namespace
        assert lines[1] == "cgroup2"
        assert "moved" in lines and "froze-itself" not in lines
        assert lines[-1] == "0::/app"
        assert os.stat(inner).st_uid == rt.registry.get(ctid).id_start  # delegated
        assert os.stat(outer).st_uid == 0  # limits: root's
        assert os.path.isdir(os.path.join(inner, "app"))
        rt.stop(ctid, fast=True)
        assert not os.path.exists(outer)
        rt.destroy(ctid)
        assert leftovers.of(rt, ctid) == []
    finally:
        leftovers.force_remove(rt, ctid)
