"""VPS operations on the node: converge to the request's desired state, then act.

Every VPS task receives the VPS's whole desired state (`protocol.VpsRequest`);
`converge` makes the VPS exist with that state, so a redelivered or repeated
request ends in the same place. Locks are the runtime's own per-VPS locks,
shared with vzctl on the node.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.errors import NotFound
from kernel.runtime import CreateSpec, Runtime
from worker import protocol
from worker.config import NodeConfig
from worker.execution import OperationContext
from worker.supervisor.client import try_request

BUSYBOX = "busybox"


@cache
def runtime(config: NodeConfig) -> Runtime:
    return Runtime(KernelNodeConfig(node=config.name, state_root=config.state_root,
                                    cgroup_prefix=config.cgroup_prefix))


def ensure_template(rt: Runtime, name: str) -> None:
    if name == BUSYBOX:
        rt.templates.ensure_busybox()
    else:
        rt.templates.verify(name)


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


def converge(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    """Make the VPS exist with the request's settings."""
    record = rt.registry.find(request.ctid)
    if record is None:
        if not request.template:
            raise NotFound(f"CT {request.ctid} does not exist on this node and the request names no template")
        context.progress("template", 10)
        ensure_template(rt, request.template)
        context.progress("create", 30)
        rt.create(CreateSpec(ctid=request.ctid, template=request.template, hostname=request.hostname,
                             onboot=request.onboot, panel_managed=True))
        return
    if request.hostname and request.hostname != record.hostname:
        rt.set_hostname(request.ctid, request.hostname)


def _create(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)


def _start(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)
    context.progress("start", 60)
    # Through the supervisor when it runs: it parents the init and keeps the console.
    if try_request(rt.config.state_root, "start", ctid=request.ctid) is None:
        rt.start(request.ctid)


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


def _set(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    converge(rt, context, request)


def _pause(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    rt.freeze(request.ctid)


def _resume(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    rt.thaw(request.ctid)


def _destroy(rt: Runtime, context: OperationContext, request: protocol.VpsRequest) -> None:
    if rt.registry.find(request.ctid) is None:
        return
    context.progress("stop", 20)
    rt.stop(request.ctid, fast=True)
    context.progress("destroy", 50)
    rt.destroy(request.ctid)


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
        ACTIONS[request.task](rt, context, request)
        return facts(rt, request.ctid)

    return run
