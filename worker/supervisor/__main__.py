"""`python -m worker.supervisor`: run this node's supervisor in the foreground.

Without `--node` it reads the node's env file variables like the node worker and builds the very
same runtime (`worker.vps.runtime`: storage pools, network, beancounters), so a VPS started by
the supervisor is set up exactly as one started by the worker. With `--node` (a node without the
panel, the kernel tests) it runs a bare library runtime from the options.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace

from kernel.config import NodeConfig
from kernel.runtime import Runtime
from worker.config import DAEMON_LOCK_WAIT
from worker.nodefiles import NodeFiles
from worker.supervisor.server import Supervisor


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker.supervisor", description=__doc__)
    parser.add_argument("--node", default="", help="bare runtime for this node (default: the node env)")
    parser.add_argument("--state-root", default="")
    parser.add_argument("--cgroup-prefix", default="ctpanel")
    parser.add_argument("--idmap-registry", default="", help="machine-wide id ranges (tests use their own)")
    parser.add_argument("--id-base", type=int, default=0)
    parser.add_argument("--socket", default="", help="default: <state-root>/run/supervisor.sock")
    parser.add_argument("--ring-size", type=int, default=0, help="console buffer per VPS (bytes)")
    args = parser.parse_args(argv)
    if args.node:
        args.state_root = args.state_root or f"/var/lib/ctpanel/node/{args.node}"
    return args


def build_runtime(args: argparse.Namespace) -> Runtime:
    if not args.node:
        from worker import vps
        from worker.config import NodeConfig as WorkerConfig

        return vps.runtime(WorkerConfig.from_env())
    config = NodeConfig(node=args.node, state_root=args.state_root, cgroup_prefix=args.cgroup_prefix)
    if args.idmap_registry:
        config = replace(config, idmap_registry=args.idmap_registry)
    if args.id_base:
        config = replace(config, id_base=args.id_base)
    return Runtime(config, lock_wait=DAEMON_LOCK_WAIT)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s supervisor %(levelname)s %(message)s")
    rt = build_runtime(args)
    # A full node runs lxcfs and the beancounter file server for its VPSs; a bare one (tests) does not.
    files = None if args.node else NodeFiles(rt)
    supervisor = Supervisor(rt, path=args.socket or None, ring_size=args.ring_size or None, files=files)

    def stop(_signum: int, _frame: object) -> None:
        supervisor.stopping = True  # VPSs keep running; a new supervisor adopts them

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    supervisor.serve()
    sys.exit(0)


if __name__ == "__main__":
    main()
