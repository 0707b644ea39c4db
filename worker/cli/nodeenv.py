"""The node's name and state root from the environment.

The part of `CliConfig` that `vzctl exec`, `exec2` and `enter` need; kept apart
so that their path imports neither dataclasses nor typing (they must start in
about the time of a bare interpreter, issue 4).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_NODE = "local"


def node_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("CTPANEL_NODE_NAME") or DEFAULT_NODE


def state_root(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("CTPANEL_STATE_ROOT") or f"/var/lib/ctpanel/node/{node_name(env)}"
