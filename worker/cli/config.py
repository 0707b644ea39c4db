"""Where the CLI finds its node: the node worker's CTPANEL_* variables, or node-local defaults.

The broker and signing settings of `worker.config.NodeConfig` are not needed
here, so this reads only the names that locate the node's state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.cli.nodeenv import node_name, state_root

if TYPE_CHECKING:
    from kernel.config import NodeConfig
    from kernel.net.network import Network

DEFAULT_CONF_DIR = "/etc/ctpanel/ct"
NET_VARIABLES = ("CTPANEL_NET_", "CTPANEL_DEVICES_ALLOW")
SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "deploy", "samples", "vswap.json")


@dataclass(frozen=True)
class CliConfig:
    node: str
    state_root: str
    cgroup_prefix: str
    conf_dir: str
    samples: str
    idmap_registry: str | None = None
    id_base: int | None = None
    net_env: tuple[tuple[str, str], ...] = ()  # CTPANEL_NET_*, CTPANEL_DEVICES_ALLOW: read when a command needs them

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> CliConfig:
        env = dict(os.environ) if env is None else env
        node = node_name(env)
        base = env.get("CTPANEL_ID_BASE")
        return cls(
            node=node,
            state_root=state_root(env),
            cgroup_prefix=env.get("CTPANEL_CGROUP_PREFIX") or "ctpanel",
            conf_dir=env.get("CTPANEL_CONF_DIR") or DEFAULT_CONF_DIR,
            samples=env.get("CTPANEL_SAMPLES") or SAMPLES,
            idmap_registry=env.get("CTPANEL_IDMAP_REGISTRY") or None,
            id_base=int(base) if base else None,
            net_env=tuple(sorted((k, v) for k, v in env.items() if k.startswith(NET_VARIABLES))),
        )

    def kernel(self) -> NodeConfig:
        from kernel.config import NodeConfig

        extra: dict[str, object] = {}
        if self.idmap_registry:
            extra["idmap_registry"] = self.idmap_registry
        if self.id_base is not None:
            extra["id_base"] = self.id_base
        return NodeConfig(node=self.node, state_root=self.state_root, cgroup_prefix=self.cgroup_prefix, **extra)

    def network(self) -> Network:
        """The node's VPS networking: from CTPANEL_NET_* as the node worker reads them
        (worker.config.net_settings), else as the node worker last set it up (a shell on the
        node has none of its variables: the quickstart's host side is a namespace of its own)."""
        from kernel.net.config import NetConfig
        from kernel.net.network import Network
        from worker.config import net_settings

        node = self.kernel()
        if not self.net_env:
            return Network(node, Network.saved_config(node))
        return Network(node, NetConfig(**net_settings(dict(self.net_env))))  # type: ignore[arg-type]

    @property
    def drift_dir(self) -> str:
        """Forced changes to panel-managed VPSs, one JSON list per CTID; reconcile reports them."""
        return os.path.join(self.state_root, "drift")
