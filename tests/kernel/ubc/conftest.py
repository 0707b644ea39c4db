"""Kernel-tier fixtures: the session runtime with the beancounter "limits" hook installed.

Tests say what limits a VPS gets with `want(ctid_limits)` before `make_vps` starts it:
the hook looks them up by CTID, as the worker's hook will look up the VPS's desired state.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kernel import cgroups
from kernel.config import NodeConfig
from kernel.runtime import Runtime, StartOptions
from kernel.ubc import Limits, limits_hook

WANTED: dict[int, Limits] = {}


@pytest.fixture(scope="session")
def runtime(node_config: NodeConfig, subreaper: None) -> Runtime:
    driver = cgroups.detect(node_config.cgroup_prefix)
    rt = Runtime(node_config, cgroup_driver=driver,
                 hooks={"limits": [limits_hook(driver, lambda ctid: WANTED.get(ctid, Limits()))]})
    rt.templates.ensure_busybox()
    return rt


@pytest.fixture
def limited_vps(make_vps: Callable[..., int], runtime: Runtime) -> Callable[[Limits], int]:
    """limited_vps(limits) -> CTID of a running VPS started with those limits."""

    def make(limits: Limits) -> int:
        ctid = make_vps(start=False)
        WANTED[ctid] = limits
        runtime.start(ctid, StartOptions(devpts_max=limits.numpty))
        return ctid

    return make

