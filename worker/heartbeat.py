"""The node's heartbeat: a consumer bootstep that reports every few seconds.

It runs on the worker's own timer, so a node that stops consuming also
stops heartbeating, and the panel's sweep marks it down.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from celery import bootsteps

from kernel import host
from kernel.errors import KernelError
from kernel.runtime import Runtime
from worker import protocol, vps
from worker.config import NodeConfig

log = logging.getLogger(__name__)


def interval() -> int:
    return int(os.environ.get("CTPANEL_HEARTBEAT_SECONDS", protocol.HEARTBEAT_SECONDS))


def build(config: NodeConfig) -> protocol.Heartbeat:
    rt = vps.runtime(config)
    facts = {**host.facts(), "cgroup_version": rt.cgroups.version, "templates": rt.templates.names(),
             "template_info": template_info(rt), "storage": storage(rt), "capabilities": capabilities(rt)}
    capacity = {**host.capacity().to_dict(), "vps_count": len(rt.registry.ctids()), "pools": disk(rt)}
    return protocol.Heartbeat(node=config.name, sent_at=time.time(), interval=interval(), facts=facts,
                              capacity=capacity)


def template_info(rt: Runtime) -> dict[str, dict[str, str]]:
    """Each cached template's version and checksum as recorded when it was added (hashing the
    tarballs every heartbeat would cost seconds; create and reinstall check them, worker/vps.py)."""
    found = {}
    for name in rt.templates.names():
        try:
            meta = rt.templates.get(name).meta
        except KernelError:
            continue  # removed while listed
        found[name] = {"version": meta.version, "checksum": meta.checksum, "distro": meta.distro,
                       "release": meta.release, "arch": meta.arch}
    return found


def storage(rt: Runtime) -> dict[str, Any]:
    """The pools, their drivers and what each driver can do; the default pool gets new VPSs."""
    return {"default": rt.storage.storage.default,
            "pools": [{"name": name, "driver": driver.name, "capabilities": dataclasses.asdict(driver.capabilities)}
                      for name, driver in sorted(rt.storage.pools.items())]}


def disk(rt: Runtime) -> dict[str, dict[str, int]]:
    """Bytes total, used and free (to an unprivileged writer) of the filesystem under each pool."""
    found = {}
    for name, driver in sorted(rt.storage.pools.items()):
        try:
            st = os.statvfs(driver.pool.path)
        except OSError:
            continue
        total = st.f_blocks * st.f_frsize
        found[name] = {"total": total, "used": total - st.f_bfree * st.f_frsize, "free": st.f_bavail * st.f_frsize}
    return found


def capabilities(rt: Runtime) -> dict[str, Any]:
    """What the node's kernel set-up allows: cgroup version and verbs (freeze, kill, delegate), the
    mounted hierarchies, and which disk quota levels its pools enforce."""
    caps = [driver.capabilities for driver in rt.storage.pools.values()]
    return {"cgroup_version": rt.cgroups.version, "cgroup": sorted(rt.cgroups.capabilities),
            "freeze": "freeze" in rt.cgroups.capabilities, "cgroup_hierarchies": sorted(rt.cgroups.hierarchies()),
            "quota": sorted({level for c in caps for level, has in (("diskspace", c.diskspace),
                             ("diskinodes", c.diskinodes), ("ugid", c.ugid_quota)) if has}),
            "snapshots": any(c.snapshots for c in caps)}


class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer: Any) -> None:
        self.send(consumer)
        self.timer_ref = consumer.timer.call_repeatedly(interval(), self.send, (consumer,), priority=10)

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer: Any) -> None:
        from worker.celery_app import config

        try:
            consumer.app.send_task(protocol.TASK_NODE_HEARTBEAT, args=[build(config).to_dict()],
                                   queue=config.panel_queue)
        except Exception:
            log.exception("heartbeat not sent")
