"""VPS operations on the node: converge to the request's desired state, then act.

Every VPS task receives the VPS's whole desired state (`protocol.VpsRequest`);
`converge` makes the VPS exist with that state, so a redelivered or repeated
request ends in the same place. Locks are the runtime's own per-VPS locks,
shared with vzctl on the node.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any

from kernel import cgroups, faults, statefile, ubc
from kernel.config import NodeConfig as KernelNodeConfig
from kernel.errors import NotFound
from kernel.net.config import NetConfig, Rate, VpsNet
from kernel.net.network import Network
from kernel.runtime import CreateSpec, Runtime
from kernel.storage.base import Limits as DiskLimits
from kernel.storage.base import PoolConfig
from kernel.storage.volumes import Storage, StorageConfig
from kernel.ubc import inside
from worker import protocol, quotas
from worker.config import DAEMON_LOCK_WAIT, NodeConfig
from worker.execution import OperationContext
from worker.supervisor.client import try_request

BUSYBOX = "busybox"

log = logging.getLogger(__name__)


def storage_config(config: NodeConfig, node: KernelNodeConfig) -> StorageConfig | None:
    """The pools from CTPANEL_STORAGE_POOLS; None: kernel/storage's own default (storage.json or `dir`)."""
    if not config.storage_pools:
        return None
    return StorageConfig(
        pools=tuple(PoolConfig(name, driver, path) for name, driver, path in config.storage_pools),
        default=config.storage_default or config.storage_pools[0][0],
        backup_dir=config.backup_dir or node.path("backup"),
    )


def beancounters_path(rt: Runtime, ctid: int) -> str:
    """Where the node keeps a VPS's beancounter limits (the kernel's ubc keeps none)."""
    return os.path.join(rt.config.path("ubc"), f"limits-{ctid}.json")


def beancounters(rt: Runtime, ctid: int) -> ubc.Limits:
    """The VPS's beancounter limits as last converged (the `limits` start stage reads them)."""
    try:
        return ubc.Limits.from_protocol(statefile.read_json(beancounters_path(rt, ctid)))
    except NotFound:
        return ubc.Limits()


def save_beancounters(rt: Runtime, ctid: int, limits: ubc.Limits) -> None:
    """Store the VPS's beancounter limits: the next start applies them (worker converge, `vzctl set --save`)."""
    statefile.ensure_dir(rt.config.path("ubc"))
    statefile.write_json(beancounters_path(rt, ctid), dataclasses.asdict(limits))


@cache
def runtime(config: NodeConfig) -> Runtime:
    """The node's runtime with its storage pools, network and beancounters; readies pools and network once."""
    node = KernelNodeConfig(node=config.name, state_root=config.state_root, cgroup_prefix=config.cgroup_prefix)
    storage = Storage(node, storage_config(config, node))
    storage.setup()
    storage.save_config()  # vzctl/vzlist/vzquota on this node read the same pools
    network = Network(node, NetConfig(host_netns=config.net_host_netns, uplink=config.net_uplink,
                                      open_tcp=config.net_open_tcp, open_udp=config.net_open_udp,
                                      device_allow=config.net_device_allow))
    network.setup_node()
    rt = wired(node, storage, network)
    rt.lock_wait = DAEMON_LOCK_WAIT
    return rt


def wired(node: KernelNodeConfig, storage: Storage, network: Network) -> Runtime:
    """A runtime with the node's storage pools, network and beancounters hook: what the node worker
    runs (`runtime`, which readies pools and network first) and what vzctl builds on a node."""
    driver = cgroups.detect(node.cgroup_prefix)
    rt = Runtime(node, cgroup_driver=driver, storage=storage, network=network,
                 hooks={"limits": [ubc.limits_hook(driver, lambda ctid: beancounters(rt, ctid))],
                        "volume": [inside.start_hook(inside.node_mount(node.run_dir))]})
    return rt


class TemplateMismatch(Exception):
    """The request names another copy of the template (version or checksum) than the node's cache holds."""

    code = protocol.ErrorCode.TEMPLATE_MISMATCH


def ensure_template(rt: Runtime, name: str, version: str = "", checksum: str = "") -> None:
    """The template in the node's cache (busybox built when missing, others checked against their recorded
    checksum), and the one the panel chose: a `version` or `checksum` given that differs is refused."""
    template = rt.templates.ensure_busybox() if name == BUSYBOX else rt.templates.verify(name)
    meta = template.meta
    if (checksum and checksum != meta.checksum) or (version and version != meta.version):
        raise TemplateMismatch(f"OS template {name}: the panel asked for version {version or '?'} ({checksum or '?'}), "
                               f"this node has {meta.version} ({meta.checksum})")


def facts(rt: Runtime, ctid: int) -> dict[str, Any]:
    status = rt.status(ctid)
    if not status.exists:
        state = protocol.VpsState.ABSENT
    elif status.frozen:
        state = protocol.VpsState.PAUSED
    elif status.running:
        state = protocol.VpsState.RUNNING
    else:
        state = protocol.VpsState.STOPPED
    return {"ctid": ctid, "state": state, "init_pid": status.init_pid}


def disk_limits(limits: dict[str, int]) -> DiskLimits:
    """protocol limits → the storage's: the panel sends one (hard) value, soft is the same."""
    space, inodes = limits.get("diskspace", 0), limits.get("diskinodes", 0)
    return DiskLimits(diskspace=(space, space), diskinodes=(inodes, inodes),
                      quotaugidlimit=limits.get("quotaugidlimit", 0))


def vps_net(current: VpsNet, request: protocol.VpsRequest) -> VpsNet:
    """The request's addresses, nameservers and rates over what the node keeps (bridged netifs...)."""
    return replace(current, ips=(*request.ipv4, *request.ipv6), nameservers=tuple(request.nameservers),
                   rate=Rate(in_bps=request.limits.get("rate_in", 0), out_bps=request.limits.get("rate_out", 0)))


def apply_settings(rt: Runtime, request: protocol.VpsRequest) -> None:
    """Store the request's disk, network and beancounter settings; a running VPS gets them at once
    where the kernel allows (disk limits per driver, addresses and rates, live beancounters)."""
    ctid = request.ctid
    with rt.lock(ctid):
        disk = disk_limits(request.limits)
        volume = rt.storage.find(ctid)
        if volume is not None and volume.limits != disk:
            rt.storage.set_limits(ctid, disk)
        if rt.network is not None:
            net = rt.network.spec(ctid)
            wanted = vps_net(net, request)
            if wanted != net:
                rt.network.configure(ctid, wanted)  # live when running
        limits, notes = ubc.Limits.for_node(request.limits)
        for note in notes:
            log.warning("CT %s: %s", ctid, note)
        previous = beancounters(rt, ctid)
        if limits != previous:
            save_beancounters(rt, ctid, limits)
            if rt.status(ctid).running:
                ubc.apply(rt.cgroups, ctid, limits, previous=previous,
                          device=ubc.backing_device(rt.storage.activate(ctid)))


def creating_path(rt: Runtime, ctid: int) -> str:
    """Names the operation that is bringing the VPS into existence, until that operation ends."""
    return os.path.join(rt.config.path("creating"), f"{ctid}.json")


def creator(rt: Runtime, ctid: int) -> str | None:
    try:
        return str(statefile.read_json(creating_path(rt, ctid)).get("operation_id"))
    except NotFound:
        return None


def remove(rt: Runtime, ctid: int) -> None:
    """Stop the VPS at once and remove all of it, registered or half-made (idempotent)."""
    if rt.registry.find(ctid) is not None:
        # Through the supervisor when it runs: it parents the init, and an init that exits
        # without the supervisor being told looks like a reboot to it.
        if try_request(rt.config.state_root, "stop", ctid=ctid, fast=True) is None:
            rt.stop(ctid, fast=True)
    elif rt.cgroups.exists(ctid):
        rt.cgroups.kill(ctid)
    rt.destroy(ctid)
    statefile.remove(beancounters_path(rt, ctid))
    statefile.remove(creating_path(rt, ctid))


def converge(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    """Make the VPS exist with the request's settings.

    A VPS this operation brings into existence is marked as its creation until
    the operation ends: if the operation fails — in this run or a redelivered
    one — `work` removes all of it, as the panel then takes it as never made.
    """
    record = rt.registry.find(request.ctid)
    if record is None:
        if not request.template:
            raise NotFound(f"CT {request.ctid} does not exist on this node and the request names no template")
        context.progress("template", 10)
        # Before anything of the VPS exists: a refused template leaves the node as it was.
        ensure_template(rt, request.template, request.template_version, request.template_checksum)
        if context.delivery > 1:
            remove(rt, request.ctid)  # what the earlier, interrupted run left
        statefile.ensure_dir(rt.config.path("creating"))
        statefile.write_json(creating_path(rt, request.ctid), {"operation_id": request.operation_id})
        context.progress("create", 30)
        rt.create(CreateSpec(ctid=request.ctid, template=request.template, hostname=request.hostname,
                             onboot=request.onboot, panel_managed=True, limits=disk_limits(request.limits)))
    elif request.hostname and request.hostname != record.hostname:
        rt.set_hostname(request.ctid, request.hostname)
    apply_settings(rt, request)
    faults.point("converge.settings")


def _create(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)


def _start(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)
    context.progress("start", 60)
    # Through the supervisor when it runs: it parents the init and keeps the console.
    if try_request(rt.config.state_root, "start", ctid=request.ctid) is None:
        rt.start(request.ctid)
    quotas.converge(rt.storage, request)


def _stop(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    if rt.registry.find(request.ctid) is None:
        return
    if try_request(rt.config.state_root, "stop", ctid=request.ctid, fast=request.fast) is None:
        rt.stop(request.ctid, fast=request.fast)


def _restart(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)
    context.progress("restart", 50)
    if try_request(rt.config.state_root, "restart", ctid=request.ctid) is None:
        rt.restart(request.ctid)
    quotas.converge(rt.storage, request)


def _set(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)
    quotas.converge(rt.storage, request)


def _pause(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    rt.freeze(request.ctid)


def _resume(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    rt.thaw(request.ctid)


def _destroy(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    context.progress("destroy", 20)
    remove(rt, request.ctid)


ACTIONS: dict[str, Callable[[Runtime, OperationContext, protocol.VpsRequest], None]] = {
    protocol.TASK_VPS_CREATE: _create,
    protocol.TASK_VPS_START: _start,
    protocol.TASK_VPS_STOP: _stop,
    protocol.TASK_VPS_RESTART: _restart,
    protocol.TASK_VPS_SET: _set,
    protocol.TASK_VPS_PAUSE: _pause,
    protocol.TASK_VPS_RESUME: _resume,
    protocol.TASK_VPS_DESTROY: _destroy,
}


def work(config: NodeConfig) -> Callable[[OperationContext], dict[str, Any]]:
    """The `work` function of `execute` for every VPS task."""

    def run(context: OperationContext) -> dict[str, Any]:
        request = context.request
        assert isinstance(request, protocol.VpsRequest)
        rt = runtime(config)
        try:
            ACTIONS[request.task](rt, context, request)
        except Exception:
            if creator(rt, request.ctid) == request.operation_id:
                try:
                    remove(rt, request.ctid)
                except Exception:
                    log.exception("CT %s: removing the half-made VPS failed; reconcile will retry", request.ctid)
            raise
        if creator(rt, request.ctid) == request.operation_id:
            statefile.remove(creating_path(rt, request.ctid))
        return facts(rt, request.ctid)

    return run


def abandon(config: NodeConfig) -> Callable[[protocol.Request], None]:
    """The `abandon` function of `execute` for every VPS task: a create given up leaves nothing."""

    def run(request: protocol.Request) -> None:
        assert isinstance(request, protocol.VpsRequest)
        rt = runtime(config)
        if creator(rt, request.ctid) == request.operation_id:
            remove(rt, request.ctid)

    return run
