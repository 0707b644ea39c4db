"""The node's usage sampling cost: one batch for N running VPSs, as the node worker makes it.

    .venv/bin/python -m bench.usage_sampling [--vps 200] [--runs 10] [--interval 10]

Run as root. Starts N real busybox VPSs on a private node (own state root,
cgroup prefix, a btrfs pool on a loop file and a host network namespace, each VPS
with one routed address from 198.51.100.0/24 and its nft table), then builds
the usage batch `--runs` times through worker/usage.py's Sampler — the fast
beancounter tier, the traffic counters (netlink), disk use (a slice per
batch), the accounting tier (a slice per batch: each VPS once per
`--accounting` seconds) — and the batch's JSON. CPU is this process's plus its
children's. Prints per-batch CPU, the accounting slice's share of it (the
batch without it is the baseline, measured in the same batches) and the
share of one core at one batch every `--interval` seconds. Target (issue 8):
≤ 1 % of a core for 200 VPSs at 10 s. The VPSs are idle busybox systems (a
few processes and descriptors each), so the accounting figures are a floor.
Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from bench.storage import btrfs_loop
from kernel.errors import KernelError
from kernel.net.config import VpsNet
from kernel.runtime import CreateSpec
from worker import usage
from worker import vps as node_vps
from worker.config import NodeConfig


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vps", type=int, default=200, help="at most 253 (one /24 of addresses)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--accounting", type=float, default=float(usage.accounting_interval()),
                        help="seconds between two counts of a VPS's accounting rows")
    args = parser.parse_args()
    os.environ["CTPANEL_USAGE_SECONDS"] = f"{args.interval:g}"  # the sampler's slices follow the interval
    os.environ["CTPANEL_USAGE_ACCOUNTING_SECONDS"] = f"{args.accounting:g}"

    top = tempfile.mkdtemp(prefix="ctpanel-bench-usage-")
    netns = f"ctpbenchu{os.getpid()}"
    made: list[int] = []
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, top, ignore_errors=True)
        pool = os.path.join(cleanup.enter_context(btrfs_loop(top)), "pool")
        subprocess.run(["ip", "netns", "add", netns], check=True)
        cleanup.callback(subprocess.run, ["ip", "netns", "del", netns], check=False)
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        config = NodeConfig(name=f"bench-usage-{os.getpid()}", broker_url="", panel_queue="", signing_key="",
                            signing_cert="", trusted_certs="", state_root=os.path.join(top, "state"),
                            cgroup_prefix=f"ctpanel-bench-usage-{os.getpid()}", net_host_netns=netns,
                            storage_pools=(("fast", "btrfs", pool),))
        rt = node_vps.runtime(config)
        cleanup.callback(remove_all, rt, made)
        rt.templates.ensure_busybox()
        addresses = ipaddress.ip_network("198.51.100.0/24").hosts()
        began = time.monotonic()
        for ctid in range(900_001, 900_001 + args.vps):
            rt.create(CreateSpec(ctid=ctid, template="busybox", hostname=f"u{ctid}"))
            made.append(ctid)
            rt.network.configure(ctid, VpsNet(ips=(f"{next(addresses)}/32",)))
            rt.start(ctid)
        print(f"{args.vps} VPSs running in {time.monotonic() - began:.0f} s", flush=True)

        sampler = usage.sampler(config)
        accounted: list[tuple[int, float]] = []  # (VPSs counted, CPU s) of each batch's accounting slice
        refresh = sampler._refresh_accounting

        def timed(rt: object, ctids: list[int]) -> None:
            before, known = cpu_seconds(), set(sampler.accounting)
            refresh(rt, ctids)
            accounted.append((len(ctids) if not known else math.ceil(len(ctids) * args.interval / args.accounting),
                              cpu_seconds() - before))

        sampler._refresh_accounting = timed  # type: ignore[method-assign]
        first = cpu_seconds()
        sampler.collect()  # warm-up: first disk measurements and accounting counts of every VPS, ledgers made
        first = cpu_seconds() - first
        accounted.clear()
        costs, sizes = [], []
        for _ in range(args.runs):
            before = cpu_seconds()
            batch = sampler.collect()
            sizes.append(len(json.dumps(batch.to_dict())))
            costs.append(cpu_seconds() - before)
            time.sleep(0.2)
        median = statistics.median(costs)
        slice_cpu = statistics.median(cpu for _, cpu in accounted)
        baseline = statistics.median(cost - cpu for cost, (_, cpu) in zip(costs, accounted, strict=True))
        per_vps = slice_cpu / max(1, accounted[0][0])
        share = f"{'':6}share of a core at 1/{args.interval:g} s"
        print(f"\nusage batch for {len(batch.samples)} VPSs ({args.runs} runs, after a warm-up), "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'':44}{'value':>10}  target")
        print(f"{'CPU per batch, median (ms)':44}{median * 1000:10.1f}")
        print(f"{share:44}{median / args.interval * 100:9.2f} %  ≤ 1 %")
        print(f"{'  of which accounting slice, median (ms)':44}{slice_cpu * 1000:10.1f}")
        print(f"{'    VPSs counted per batch':44}{accounted[0][0]:10d}")
        print(f"{'    per VPS counted (ms)':44}{per_vps * 1000:10.2f}")
        print(f"{'  baseline: batch without it, median (ms)':44}{baseline * 1000:10.1f}")
        print(f"{share:44}{baseline / args.interval * 100:9.2f} %")
        print(f"{'CPU per batch, max (ms)':44}{max(costs) * 1000:10.1f}")
        print(f"{'first batch, every VPS counted (ms)':44}{first * 1000:10.1f}")
        print(f"{'batch size (KiB)':44}{statistics.median(sizes) / 1024:10.1f}")


def remove_all(rt, ctids: list[int]) -> None:
    for ctid in reversed(ctids):
        with contextlib.suppress(KernelError):
            rt.stop(ctid, fast=True)
        with contextlib.suppress(KernelError):
            rt.destroy(ctid)
    with contextlib.suppress(KernelError):
        rt.network.teardown_node()


if __name__ == "__main__":
    main()
