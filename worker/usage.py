"""The node's usage sampling: one `protocol.UsageBatch` every CTPANEL_USAGE_SECONDS (60).

A consumer bootstep on the worker's timer (like the heartbeat) reads every
VPS's counters in one pass of the cgroup files (kernel/ubc's fast tier:
beancounter rows, CPU time, memory, processes), the traffic totals of every
VPS's nft table over netlink (kernel/net), and disk use from the storage
drivers — the slowest source, so each VPS's disk figures are refreshed once
per CTPANEL_USAGE_DISK_SECONDS (300), a slice of the VPSs per batch, and the
last figures sent in between. The beancounter accounting tier (kernel/ubc/
accounting.py: numfile, numtcpsock, numothersock, numpty, numflock, numiptent,
counted from each VPS's processes and namespaces) follows the same pattern:
each VPS's rows are refreshed once per CTPANEL_USAGE_ACCOUNTING_SECONDS (60),
the last rows are sent in every batch, and they are kept in the node's run
directory for the in-VPS table's server (kernel/ubc/fusefile.py). Totals are
sent with their epoch, never deltas: ledgers keep them monotonic across cgroup
re-creation, rebuilt nft tables and worker restarts; the sample's epoch
changes only when a ledger was lost.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from celery import bootsteps

from kernel import statefile
from kernel.errors import KernelError
from kernel.ubc import accounting
from kernel.ubc.counters import FastReader, Ledger, Row
from worker import protocol, quotas, vps
from worker.config import NodeConfig

log = logging.getLogger(__name__)


def interval() -> int:
    return int(os.environ.get("CTPANEL_USAGE_SECONDS", "60"))


def disk_interval() -> int:
    return int(os.environ.get("CTPANEL_USAGE_DISK_SECONDS", "300"))


def accounting_interval() -> int:
    return int(os.environ.get("CTPANEL_USAGE_ACCOUNTING_SECONDS", "60"))


def due(ctids: list[int], have: dict[int, Any], start: int, every: int) -> tuple[set[int], int]:
    """The VPSs to refresh in this batch — those never measured plus one slice of the others, so
    each is refreshed once per `every` seconds whatever the number of VPSs — and the next slice's start."""
    if not ctids:
        return set(), start
    per_batch = math.ceil(len(ctids) * interval() / max(every, interval()))
    start %= len(ctids)
    return {*(c for c in ctids if c not in have), *(ctids + ctids)[start:start + per_batch]}, start + per_batch


@dataclass
class Sampler:
    """The node's sources of usage and what it keeps between batches."""

    config: NodeConfig
    fast: FastReader
    traffic: Ledger  # net totals folded across the network's own epochs (a lost traffic.json)
    disk: dict[int, tuple[int, int | None]] = field(default_factory=dict)  # ctid -> (bytes, inodes)
    disk_next: int = 0  # where the next slice of disk refreshes starts
    accounting: dict[int, dict[str, Row]] = field(default_factory=dict)  # ctid -> last accounting rows
    accounting_next: int = 0

    def collect(self) -> protocol.UsageBatch:
        """Every VPS of this node that has cgroups (running or recently stopped)."""
        rt = vps.runtime(self.config)
        known = set(rt.registry.ctids())
        samples = {ctid: sample.to_usage() for ctid, sample in self.fast.read_all().items() if ctid in known}
        net = self._traffic(rt, known)
        self._refresh_disk(rt, sorted(samples))
        self._refresh_accounting(rt, sorted(samples))
        epoch = hashlib.blake2s(f"{self.fast.ledger.epoch}.{self.traffic.epoch}".encode(), digest_size=16).hexdigest()
        for ctid, sample in samples.items():
            sample["epoch"] = epoch
            sample.update(net.get(ctid, {}))
            sample["beancounters"].update({name: row.to_json() for name, row in self.accounting.get(ctid, {}).items()})
            if ctid in self.disk:
                used, inodes = self.disk[ctid]
                sample["disk_bytes"] = used
                if inodes is not None:
                    sample["disk_inodes"] = inodes
        for ledger in (self.fast.ledger, self.traffic):
            ledger.forget(known)
            ledger.save()
        for ctid in set(self.disk) - known:
            del self.disk[ctid]
        if set(self.accounting) - known:
            for ctid in set(self.accounting) - known:
                del self.accounting[ctid]
            accounting.save_rows(accounting.rows_path(rt.config.run_dir), self.accounting)
        return protocol.UsageBatch(node=self.config.name, sent_at=time.time(), interval=interval(),
                                   samples=[samples[ctid] for ctid in sorted(samples)])

    def _traffic(self, rt: Any, known: set[int]) -> dict[int, dict[str, int]]:
        if rt.network is None:
            return {}
        try:
            report = rt.network.traffic()
        except KernelError:
            log.exception("traffic counters not read; this batch has none")
            return {}
        ident = int(float(report.epoch) * 1e6) if report.epoch.replace(".", "", 1).isdigit() else hash(report.epoch)
        return {ctid: self.traffic.observe(ctid, ident, {
            "net_rx_bytes": t.in_bytes, "net_rx_packets": t.in_packets,
            "net_tx_bytes": t.out_bytes, "net_tx_packets": t.out_packets,
        }) for ctid, t in report.vps.items() if ctid in known}

    def _refresh_disk(self, rt: Any, ctids: list[int]) -> None:
        chosen, self.disk_next = due(ctids, self.disk, self.disk_next, disk_interval())
        for ctid in chosen:
            try:
                usage = rt.storage.usage(ctid)
            except KernelError:
                continue  # no volume (being destroyed) or a driver that cannot say
            self.disk[ctid] = (usage.bytes_used, usage.inodes_used)
            quotas.refresh(rt, ctid)  # the per-user quota files inside, with the same cadence

    def _refresh_accounting(self, rt: Any, ctids: list[int]) -> None:
        """Count the accounting rows of this batch's slice and keep every VPS's last rows where the
        in-VPS table's server reads them. maxheld rides on the fast tier's ledger, so it restarts
        with the VPS's cgroup as the kernel's peaks do."""
        chosen, self.accounting_next = due(ctids, self.accounting, self.accounting_next, accounting_interval())
        if not chosen:
            return
        counted = accounting.account(rt.cgroups, {ctid: vps.beancounters(rt, ctid) for ctid in chosen},
                                     self.fast.ledger)
        for ctid in chosen:
            if ctid in counted:
                self.accounting[ctid] = counted[ctid]
            else:
                self.accounting.pop(ctid, None)  # no cgroup any more (stopped meanwhile)
        accounting.save_rows(accounting.rows_path(rt.config.run_dir), self.accounting)


@cache
def sampler(config: NodeConfig) -> Sampler:
    ubc_dir = statefile.ensure_dir(os.path.join(config.state_root, "ubc"))
    return Sampler(config, FastReader(vps.runtime(config).cgroups, Ledger.for_node(config.state_root)),
                   Ledger(os.path.join(ubc_dir, "traffic-ledger.json")))


def collect(config: NodeConfig) -> protocol.UsageBatch:
    return sampler(config).collect()


class UsageStep(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, consumer: Any) -> None:
        self.timer_ref = consumer.timer.call_repeatedly(interval(), self.send, (consumer,), priority=20)

    def stop(self, consumer: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def send(self, consumer: Any) -> None:
        from worker.celery_app import config

        try:
            batch = collect(config)
            consumer.app.send_task(protocol.TASK_USAGE_BATCH, args=[batch.to_dict()], queue=config.panel_queue,
                                   compression=protocol.USAGE_BATCH_COMPRESSION)
        except Exception:
            log.exception("usage batch not sent")
