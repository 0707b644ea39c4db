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

#: Seconds the node's daemons (worker, supervisor) wait for a VPS's lock held by another client:
#: their callers are queued operations; vzctl's own runtime fails at once ("locked", exit 9).
DAEMON_LOCK_WAIT = 30.0

#: Node worker pool processes (CTPANEL_NODE_CONCURRENCY): operations on different VPSs run side by
#: side; most of a start waits on the kernel and on nft(8), so a pool of 2 queued a burst of starts.
DEFAULT_CONCURRENCY = 16


class ConfigError(RuntimeError):
    """A required setting is missing or wrong; the message says which and where."""


def _ports(env: dict[str, str], name: str) -> tuple[int, ...]:
    words = [w.strip() for w in env.get(name, "").split(",") if w.strip()]
    if not all(w.isdigit() and 0 < int(w) < 65536 for w in words):
        raise ConfigError(f"{name}: expected comma-separated port numbers, got {env[name]!r}")
    return tuple(int(w) for w in words)


def net_settings(env: dict[str, str]) -> dict[str, object]:
    """CTPANEL_NET_UPLINK, _HOST_NETNS, _OPEN_TCP, _OPEN_UDP and CTPANEL_DEVICES_ALLOW
    (`CTID:c|b:MAJOR:MINOR` items) as `kernel.net.config.NetConfig`'s keywords: the node
    worker and vzctl read them alike."""
    return {
        "uplink": env.get("CTPANEL_NET_UPLINK", "").strip() or None,
        "host_netns": env.get("CTPANEL_NET_HOST_NETNS", "").strip() or None,
        "open_tcp": _ports(env, "CTPANEL_NET_OPEN_TCP"),
        "open_udp": _ports(env, "CTPANEL_NET_OPEN_UDP"),
        "device_allow": tuple(env.get("CTPANEL_DEVICES_ALLOW", "").replace(",", " ").split()),
    }


def _pools(env: dict[str, str]) -> tuple[tuple[str, str, str], ...]:
    """CTPANEL_STORAGE_POOLS: `name:driver:/path[,...]`, e.g. `fast:btrfs:/vz/btrfs,img:image:/vz/images`."""
    pools = []
    for item in (w.strip() for w in env.get("CTPANEL_STORAGE_POOLS", "").split(",")):
        if not item:
            continue
        name, _, rest = item.partition(":")
        driver, _, path = rest.partition(":")
        if not (name and driver and path.startswith("/")):
            raise ConfigError(f"CTPANEL_STORAGE_POOLS: expected name:driver:/absolute/path, got {item!r}")
        pools.append((name, driver, path))
    return tuple(pools)


def _concurrency(env: dict[str, str]) -> int:
    value = env.get("CTPANEL_NODE_CONCURRENCY", "").strip()
    if not value:
        return DEFAULT_CONCURRENCY
    if not value.isdigit() or not 0 < int(value) <= 256:
        raise ConfigError(f"CTPANEL_NODE_CONCURRENCY: expected a number of processes (1-256), got {value!r}")
    return int(value)


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
    # Storage pools (name, driver, path); empty: <state_root>/storage.json, else one `dir` pool.
    storage_pools: tuple[tuple[str, str, str], ...] = ()
    storage_default: str = ""  # default: the first pool
    backup_dir: str = ""  # default: <state_root>/backup
    net_uplink: str | None = None  # None: VPS traffic never leaves the node
    net_host_netns: str | None = None  # a named network namespace as the host side (tests); None: our own
    net_open_tcp: tuple[int, ...] = ()  # node services VPSs may reach
    net_open_udp: tuple[int, ...] = ()
    net_device_allow: tuple[str, ...] = ()  # admin-chosen device nodes per VPS (kernel/net/devices.py)
    concurrency: int = DEFAULT_CONCURRENCY

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
            storage_pools=_pools(env),
            storage_default=env.get("CTPANEL_STORAGE_DEFAULT", "").strip(),
            backup_dir=env.get("CTPANEL_BACKUP_DIR", "").strip(),
            concurrency=_concurrency(env),
            **{f"net_{key}": value for key, value in net_settings(env).items()},  # type: ignore[arg-type]
        )
