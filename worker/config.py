"""Node configuration from the environment.

The node worker imports no Django; everything it needs comes from
`CTPANEL_*` variables. The set-up writes them to an env file once and
exports them into the processes it starts (systemd: `EnvironmentFile=`),
so no secret ever appears on a command line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from worker import protocol


class ConfigError(RuntimeError):
    """A required setting is missing or wrong; the message says which and where."""


def require(env: dict[str, str], name: str, hint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set. {hint}")
    return value


@dataclass(frozen=True)
class NodeConfig:
    name: str
    broker_url: str
    panel_queue: str
    signing_key: str
    signing_cert: str
    trusted_certs: str
    state_root: str
    cgroup_prefix: str

    @property
    def queue(self) -> str:
        return protocol.node_queue(self.name)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> NodeConfig:
        env = dict(os.environ) if env is None else env
        hint = ("Start the node through `./ctl up` or its systemd unit, which export "
                "the node env file (/var/lib/ctpanel/etc/node-NAME.env).")
        try:
            name = protocol.validate_node_name(require(env, "CTPANEL_NODE_NAME", hint))
        except protocol.ProtocolError as exc:
            raise ConfigError(f"CTPANEL_NODE_NAME: {exc}") from exc
        return cls(
            name=name,
            broker_url=require(env, "CTPANEL_BROKER_URL", hint),
            panel_queue=env.get("CTPANEL_PANEL_QUEUE") or protocol.PANEL_QUEUE,
            signing_key=require(env, "CTPANEL_SIGNING_KEY", hint),
            signing_cert=require(env, "CTPANEL_SIGNING_CERT", hint),
            trusted_certs=require(env, "CTPANEL_TRUSTED_CERTS", hint),
            state_root=env.get("CTPANEL_STATE_ROOT") or f"/var/lib/ctpanel/node/{name}",
            cgroup_prefix=env.get("CTPANEL_CGROUP_PREFIX") or "ctpanel",
        )
