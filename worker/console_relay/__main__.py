"""`python -m worker.console_relay`: the node's console relay, with the node env (like the node worker)."""

from __future__ import annotations

import logging
import signal
import sys

import redis

from kernel import syscalls as sc
from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from worker.config import ConfigError, NodeConfig
from worker.console_relay.endpoints import open_endpoint
from worker.console_relay.service import Relay
from worker.console_relay.tickets import load_trusted_keys


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = NodeConfig.from_env()
    except ConfigError as exc:
        print(f"console relay: {exc}", file=sys.stderr)
        return 2
    # A login shell whose helper had to be killed comes back here (not to whatever subreaper is
    # above us), where closing its session reaps it: a zombie left in a VPS blocks its stop.
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    # A bare runtime is enough: the relay only reads status and enters running VPSs.
    rt = Runtime(KernelNodeConfig(node=config.name, state_root=config.state_root, cgroup_prefix=config.cgroup_prefix))
    relay = Relay(redis.Redis.from_url(config.broker_url), config.name, load_trusted_keys(config.trusted_certs),
                  lambda ctid, mode: open_endpoint(rt, config.state_root, ctid, mode))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: relay.stopping.set())
    logging.getLogger("ctpanel.console_relay").info("ready for node %s", config.name)
    relay.serve()
    relay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
