"""Usage batches for 10,000 VPSs, signed, through Redis, into the real panel worker and PostgreSQL.

    ./ctl test bench/usage_ingest.py -p tests.services -o python_functions=run -s

uses the test profile's PostgreSQL and Redis and the session's panel worker
(concurrency 2). BENCH_VPSS (10000) VPS rows on nodes of BENCH_PER_NODE (200)
VPSs each; BENCH_ROUNDS (5) sampling rounds, one batch per node per round, a
minute apart in node time, each sample with the fast tier's beancounter rows.

Prints the ingest throughput (samples per minute of wall time) and the CPU the
panel worker (main process and pool, and each apart) and PostgreSQL (postmaster and backends)
spent per 50,000 samples, as a share of one core if 50,000 samples arrive
every minute. Target (issue 8): ≥ 50,000 samples/min with ≤ 10 % of a core for
the panel worker. Not a test: collected only when named, asserts nothing.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import pytest

from kernel.ubc.counters import ROWS

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """utime + stime of a process (and of its waited-for children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def tree_cpu(root: int) -> float:
    """The process, its waited-for children, and its live children."""
    from tests.services import children

    return cpu_seconds(root, with_children=True) + sum(cpu_seconds(c) for c in children(root))


def postmaster_pid() -> int:
    """The test profile's PostgreSQL (ctl keeps its cluster in <test home>/pg)."""
    return int(Path(os.environ["CTPANEL_TEST_HOME"], "pg", "postmaster.pid").read_text().split()[0])


def beancounters(i: int, round_: int) -> dict[str, dict[str, int]]:
    return {name: {"held": 1000 + i + round_, "maxheld": 2000 + i, "barrier": 2**40, "limit": 2**40,
                   "failcnt": round_ if name == "numproc" and i % 100 == 0 else 0} for name in ROWS}


def sample(ctid: int, i: int, round_: int) -> dict:
    return {"ctid": ctid, "epoch": "bench", "cpu_ns": (round_ + 1) * 10**9 + i, "net_rx_bytes": round_ * 10**6,
            "net_tx_bytes": round_ * 10**5, "net_rx_packets": round_ * 1000, "net_tx_packets": round_ * 100,
            "ram_bytes": 2**27 + i, "swap_bytes": 0, "disk_bytes": 10**9, "disk_inodes": 20000, "processes": 12,
            "beancounters": beancounters(i, round_)}


@pytest.mark.django_db(transaction=True)
def run(stack) -> None:
    from panel.accounts.choices import Role
    from panel.accounts.models import User
    from panel.celery import app as panel_app
    from panel.nodes.models import Node
    from panel.usage.models import Sample
    from panel.vps.models import VPS
    from worker import protocol

    total = int(os.environ.get("BENCH_VPSS", "10000"))
    per_node = int(os.environ.get("BENCH_PER_NODE", "200"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    customer = User.objects.create_user("bench-usage", role=Role.CUSTOMER)
    nodes = Node.objects.bulk_create([Node(name=f"bench-u{n}") for n in range((total + per_node - 1) // per_node)])
    vpss = VPS.objects.bulk_create([
        VPS(ctid=5_000_000 + i, node=nodes[i // per_node], customer=customer, hostname=f"b{i}", template="busybox",
            state="running") for i in range(total)])
    by_node: dict[str, list[tuple[int, int]]] = {}
    for i, vps in enumerate(vpss):
        by_node.setdefault(nodes[i // per_node].name, []).append((i, vps.ctid))

    queue = stack.panel_env["CTPANEL_PANEL_QUEUE"]
    worker = stack.processes["panel-worker"].popen.pid
    postmaster = postmaster_pid()
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=rounds + 1)
    bodies = [protocol.UsageBatch(node=name, sent_at=(start + datetime.timedelta(minutes=r)).timestamp(), interval=60,
                                  samples=[sample(ctid, i, r) for i, ctid in members]).to_dict()
              for r in range(rounds) for name, members in by_node.items()]
    expected = total * rounds

    cpu_worker, cpu_main, cpu_pg = tree_cpu(worker), cpu_seconds(worker), tree_cpu(postmaster)
    began = time.monotonic()
    for body in bodies:
        panel_app.send_task(protocol.TASK_USAGE_BATCH, args=[body], queue=queue,
                            compression=protocol.USAGE_BATCH_COMPRESSION)
    sent = time.monotonic() - began
    while (stored := Sample.objects.filter(vps__ctid__gte=5_000_000).count()) < expected:
        if time.monotonic() - began > 1800:
            raise TimeoutError(f"only {stored} of {expected} samples after 30 min")
        time.sleep(0.5)
    wall = time.monotonic() - began
    cpu_worker, cpu_main, cpu_pg = (tree_cpu(worker) - cpu_worker, cpu_seconds(worker) - cpu_main,
                                    tree_cpu(postmaster) - cpu_pg)

    per_minute = expected / wall * 60
    share = 50_000 / expected / 60 * 100  # percent of a core per CPU second spent on `expected` samples
    print(f"\nusage ingest: {total} VPSs on {len(nodes)} nodes x {rounds} rounds = {expected} samples "
          f"({len(ROWS)} beancounter rows each), {len(bodies)} batches sent in {sent:.1f} s")
    print(f"{'':28}{'value':>12}  target")
    print(f"{'throughput (samples/min)':28}{per_minute:12,.0f}  ≥ 50,000")
    print(f"{'panel worker CPU (s)':28}{cpu_worker:12.1f}")
    print(f"{'  at 50k samples/min':28}{cpu_worker * share:11.1f} %  ≤ 10 % of a core")
    print(f"{'  main process (s)':28}{cpu_main:12.1f}")
    print(f"{'  pool (s)':28}{cpu_worker - cpu_main:12.1f}")
    print(f"{'PostgreSQL CPU (s)':28}{cpu_pg:12.1f}")
    print(f"{'  at 50k samples/min':28}{cpu_pg * share:11.1f} %  (reported)")
