"""Messages between the panel and its nodes.

Stdlib only: the panel imports this module and nothing else of worker/.
Every message is a JSON object with a `schema` version "MAJOR.MINOR". A
reader accepts any minor version of its own major (unknown fields are
ignored) and refuses another major with `UnsupportedSchema`.

Celery's message signing covers the message body but not its headers (task
name, id, routing). So every request body names its task, its operation
id and its node, and the receiving task checks all three against what it
was delivered as: a signed body replayed under another task name, to
another node or with another id is refused.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

SCHEMA_VERSION = "1.5"
SCHEMA_MAJOR = 1

PANEL_QUEUE = "panel"
NODE_QUEUE_PREFIX = "node."

# Task names: the only ones a node or the panel worker executes.
TASK_PING = "node.ping"
TASK_INVENTORY = "node.inventory"
# VPS operations: every one carries the VPS's whole desired state (VpsRequest).
TASK_VPS_CREATE = "node.vps.create"
TASK_VPS_START = "node.vps.start"
TASK_VPS_STOP = "node.vps.stop"
TASK_VPS_RESTART = "node.vps.restart"
TASK_VPS_SET = "node.vps.set"
TASK_VPS_PAUSE = "node.vps.pause"
TASK_VPS_RESUME = "node.vps.resume"
TASK_VPS_DESTROY = "node.vps.destroy"
# Since 1.1: a new root filesystem, and the VPS's data (snapshots in its pool, backups in the node's
# backup directory). Each ends with the VPS running, except snapshot, backup and their deletes.
TASK_VPS_REINSTALL = "node.vps.reinstall"
TASK_VPS_SNAPSHOT = "node.vps.snapshot"
TASK_VPS_SNAPSHOT_DELETE = "node.vps.snapshot_delete"
TASK_VPS_ROLLBACK = "node.vps.rollback"
TASK_VPS_BACKUP = "node.vps.backup"
TASK_VPS_BACKUP_DELETE = "node.vps.backup_delete"
TASK_VPS_RESTORE = "node.vps.restore"
VPS_DATA_TASKS = (TASK_VPS_REINSTALL, TASK_VPS_SNAPSHOT, TASK_VPS_SNAPSHOT_DELETE, TASK_VPS_ROLLBACK, TASK_VPS_BACKUP,
                  TASK_VPS_BACKUP_DELETE, TASK_VPS_RESTORE)
VPS_TASKS = (TASK_VPS_CREATE, TASK_VPS_START, TASK_VPS_STOP, TASK_VPS_RESTART, TASK_VPS_SET, TASK_VPS_PAUSE,
             TASK_VPS_RESUME, TASK_VPS_DESTROY, *VPS_DATA_TASKS)
TASK_APPLY_REPORT = "panel.apply_report"
TASK_NODE_HEARTBEAT = "panel.node_heartbeat"
TASK_USAGE_BATCH = "panel.usage_batch"
# Usage batches (~1 KB per VPS of JSON) travel zlib-compressed: the panel worker's main process
# moves a quarter of the bytes through Redis and its late-ack copy.
USAGE_BATCH_COMPRESSION = "zlib"

# A node says it is alive this often; the panel calls it down after this many
# missed heartbeats (so within HEARTBEAT_SECONDS * (HEARTBEAT_MISSED_DOWN + 1)).
HEARTBEAT_SECONDS = 10
HEARTBEAT_MISSED_DOWN = 3

NODE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


class ProtocolError(ValueError):
    """A message does not follow this protocol."""

    code = "protocol.invalid"


class UnsupportedSchema(ProtocolError):
    code = "protocol.schema"


class MisroutedMessage(ProtocolError):
    """A signed body arrived under another task name, node or id than it names."""

    code = "protocol.misrouted"


class UntrustedMessage(ProtocolError):
    """Not signed by a trusted key, or altered after signing."""

    code = "protocol.untrusted"


class ErrorCode:
    """The shared catalog of error codes in reports (panel shows them to people)."""

    PROTOCOL_INVALID = ProtocolError.code
    PROTOCOL_SCHEMA = UnsupportedSchema.code
    PROTOCOL_MISROUTED = MisroutedMessage.code
    PROTOCOL_UNTRUSTED = UntrustedMessage.code
    INTERNAL = "node.internal"
    GAVE_UP = "node.gave_up"
    TEMPLATE_MISMATCH = "node.template_mismatch"  # since 1.4
    # kernel/errors.py's KernelError codes, as the node reports them.
    KERNEL_ERROR = "kernel.error"
    KERNEL_NOT_FOUND = "kernel.not_found"
    KERNEL_EXISTS = "kernel.exists"
    KERNEL_PERMISSION = "kernel.permission"
    KERNEL_BUSY = "kernel.busy"
    KERNEL_NO_SPACE = "kernel.no_space"
    KERNEL_LIMIT = "kernel.limit"
    KERNEL_INVALID = "kernel.invalid"
    KERNEL_NOT_SUPPORTED = "kernel.not_supported"
    KERNEL_TIMEOUT = "kernel.timeout"
    KERNEL_COMMAND = "kernel.command"
    # Raised on the panel's side.
    PANEL_BROKER = "panel.broker"
    PANEL_STALE = "panel.stale"

    MESSAGES: ClassVar[dict[str, str]] = {
        PROTOCOL_INVALID: "The node could not read the request. Update the panel and the node to the same version.",
        PROTOCOL_SCHEMA: "The node speaks another protocol version. Update the panel and the node to the same version.",
        PROTOCOL_MISROUTED: "The node refused a request that was not addressed to it.",
        PROTOCOL_UNTRUSTED: "The node refused a request that the panel had not signed (or that was altered). "
        "Check that the node trusts this panel's certificate.",
        INTERNAL: "The node failed unexpectedly. The node worker's log has the details.",
        GAVE_UP: "The node gave up: every attempt ended its worker process. The node worker's log has the details.",
        TEMPLATE_MISMATCH: "The node's copy of the OS template is not the one the panel chose (another version or "
        "checksum), so nothing was changed. Try again in a minute, once the node has told the panel what it has; "
        "if it keeps failing, the administrator should rebuild or re-import the template on the node.",
        KERNEL_ERROR: "The node's kernel refused the operation. The operation's log has the details.",
        KERNEL_NOT_FOUND: "Something the operation needs does not exist on the node (the VPS, its template or "
        "volume). Check the VPS's state, or reinstall it.",
        KERNEL_EXISTS: "It exists already on the node.",
        KERNEL_PERMISSION: "The node was not allowed to do this.",
        KERNEL_BUSY: "The VPS is busy with another operation. Try again when that one has finished.",
        KERNEL_NO_SPACE: "The node or the VPS ran out of disk space.",
        KERNEL_LIMIT: "A resource limit on the node was reached.",
        KERNEL_INVALID: "The node refused a value of the request as invalid.",
        KERNEL_NOT_SUPPORTED: "The node does not support this (its kernel, storage or configuration lacks it).",
        KERNEL_TIMEOUT: "The node did not finish in time.",
        KERNEL_COMMAND: "A tool the node ran failed. The operation's log has its output.",
        PANEL_BROKER: "The panel could not hand the operation to the message broker. Nothing was done; "
        "try again, and tell the administrator if it keeps failing.",
        PANEL_STALE: "The node never finished this operation (no report for a long time). Check the node, "
        "then try again.",
    }


def validate_node_name(name: str) -> str:
    """Node names become queue names and file names: lower-case letters, digits, '-'."""
    if not isinstance(name, str) or not NODE_NAME_RE.match(name):
        raise ProtocolError(
            f"invalid node name {name!r}: use 1-32 lower-case letters, digits or '-', "
            "not starting or ending with '-'"
        )
    return name


def node_queue(node_name: str) -> str:
    return NODE_QUEUE_PREFIX + validate_node_name(node_name)


# A node signs its messages with a certificate whose common name is "node-<name>"
# (`python -m worker.keys ensure --name node-<name>`); the panel accepts a message
# naming a node only from that node's certificate (or its own).
NODE_SIGNER_PREFIX = "node-"


def node_signer_name(node_name: str) -> str:
    """The common name of `node_name`'s signing certificate."""
    return NODE_SIGNER_PREFIX + validate_node_name(node_name)


def node_of_signer(common_name: str) -> str | None:
    """The node a signing certificate's common name speaks for; None if it names no node."""
    name = common_name.removeprefix(NODE_SIGNER_PREFIX)
    return name if name != common_name and NODE_NAME_RE.match(name) else None


def check_schema(value: Any) -> None:
    if not isinstance(value, str) or not re.fullmatch(r"\d+\.\d+", value):
        raise ProtocolError(f"message has no valid schema version: {value!r}")
    major = int(value.split(".", 1)[0])
    if major != SCHEMA_MAJOR:
        raise UnsupportedSchema(
            f"message schema {value} is not supported by this side "
            f"(speaks {SCHEMA_VERSION}); upgrade the older of panel and node"
        )


M = TypeVar("M", bound="Message")


@dataclass(frozen=True, kw_only=True)
class Message:
    """Base of every protocol message: encode to and decode from plain JSON data."""

    schema: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[M], data: Any) -> M:
        if not isinstance(data, dict):
            raise ProtocolError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        check_schema(data.get("schema"))
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        missing = [n for n, f in known.items() if n not in kwargs and _required(f)]
        if missing:
            raise ProtocolError(f"{cls.__name__}: missing fields {', '.join(sorted(missing))}")
        for name, value in kwargs.items():
            _check_type(cls.__name__, name, known[name].type, value)
        return cls(**kwargs)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "dict[str, Any]": (dict,),
    "list[str]": (list,),
    "list[dict[str, Any]]": (list,),
    "str | None": (str, type(None)),
}


def _check_type(cls_name: str, name: str, annotation: Any, value: Any) -> None:
    expected = _JSON_TYPES.get(str(annotation))
    if expected is None:
        return
    if isinstance(value, bool) and bool not in expected:
        raise ProtocolError(f"{cls_name}.{name}: expected {annotation}, got bool")
    if not isinstance(value, expected):
        raise ProtocolError(f"{cls_name}.{name}: expected {annotation}, got {type(value).__name__}")


@dataclass(frozen=True, kw_only=True)
class Request(Message):
    """A node operation. `operation_id` is also the Celery task id."""

    task: str
    node: str
    operation_id: str

    def check_delivery(self, *, task: str, node: str, task_id: str | None) -> None:
        """Refuse a body delivered under another task, node or id than it names."""
        if self.task != task or self.node != node or self.operation_id != task_id:
            raise MisroutedMessage(
                f"refused: body names task {self.task!r} for node {self.node!r} as "
                f"{self.operation_id!r}, delivered as {task!r} to {node!r} as {task_id!r}"
            )


@dataclass(frozen=True, kw_only=True)
class PingRequest(Request):
    """Answer with the node's facts; `delay_ms` holds the answer back (diagnostics, tests)."""

    task: str = TASK_PING
    delay_ms: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.delay_ms, bool) or not isinstance(self.delay_ms, int) or not 0 <= self.delay_ms <= 60000:
            raise ProtocolError(f"PingRequest.delay_ms: expected 0-60000, got {self.delay_ms!r}")


@dataclass(frozen=True, kw_only=True)
class InventoryRequest(Request):
    """List the node's VPSs and orphans; with `clean`, remove the orphans (never a registered VPS)."""

    task: str = TASK_INVENTORY
    clean: bool = False


CTID_MIN, CTID_MAX = 100, 2**31 - 1
# Snapshot names (chosen by the panel) and backup ids (chosen by the node: UTC time to the microsecond).
SNAPSHOT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")



class VpsState:
    """What a node reports a VPS to be (the `state` fact of every VPS report)."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    ABSENT = "absent"


@dataclass(frozen=True, kw_only=True)
class VpsRequest(Request):
    """A VPS operation with the VPS's whole desired state, never a delta.

    The node converges to this state and then does what `task` says; a
    redelivered or repeated request converges to the same state.
    """

    task: str
    ctid: int
    hostname: str = ""
    template: str = ""
    template_version: str = ""
    template_checksum: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    onboot: bool = False
    root_password_hash: str = ""
    ssh_keys: list[str] = field(default_factory=list)
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)
    fast: bool = False
    # Since 1.1, for the data tasks: the snapshot (snapshot, snapshot_delete, rollback), the backup
    # (backup_delete, restore), and how many backups of the VPS the node keeps at most (backup).
    snapshot: str = ""
    backup: str = ""
    keep: int = 0
    # Since 1.2: the second-level quotas inside the VPS (limits.quotaugidlimit > 0), the whole list:
    # ids not in it have no limits. See `check_ugid_quotas`.
    ugid_quotas: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in VPS_TASKS:
            raise ProtocolError(f"VpsRequest.task: not a VPS task: {self.task!r}")
        if isinstance(self.ctid, bool) or not isinstance(self.ctid, int) or not CTID_MIN <= self.ctid <= CTID_MAX:
            raise ProtocolError(f"VpsRequest.ctid: expected {CTID_MIN}..{CTID_MAX}, got {self.ctid!r}")
        check_limits(self.limits)
        for name in ("hostname", "template", "template_version", "template_checksum", "root_password_hash"):
            value = getattr(self, name)
            if any(c in value for c in "\n\r\0"):
                raise ProtocolError(f"VpsRequest.{name}: control characters are not allowed")
        for name in ("ssh_keys", "ipv4", "ipv6", "nameservers"):
            if not all(isinstance(v, str) and not any(c in v for c in "\n\r\0") for v in getattr(self, name)):
                raise ProtocolError(f"VpsRequest.{name}: expected single-line strings")
        if self.snapshot and not SNAPSHOT_NAME_RE.match(self.snapshot):
            raise ProtocolError(f"VpsRequest.snapshot: bad snapshot name {self.snapshot!r}")
        if self.backup and not BACKUP_ID_RE.match(self.backup):
            raise ProtocolError(f"VpsRequest.backup: bad backup id {self.backup!r}")
        check_ugid_quotas(self.ugid_quotas, self.limits.get("quotaugidlimit", 0))
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or self.keep < 0:
            raise ProtocolError(f"VpsRequest.keep: expected a non-negative integer, got {self.keep!r}")
        needs = {TASK_VPS_SNAPSHOT: "snapshot", TASK_VPS_SNAPSHOT_DELETE: "snapshot", TASK_VPS_ROLLBACK: "snapshot",
                 TASK_VPS_BACKUP_DELETE: "backup", TASK_VPS_RESTORE: "backup", TASK_VPS_REINSTALL: "template"}
        if self.task in needs and not getattr(self, needs[self.task]):
            raise ProtocolError(f"VpsRequest: {self.task} needs `{needs[self.task]}`")



class Status:
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TERMINAL = frozenset({SUCCEEDED, FAILED})
    ALL = frozenset({RUNNING, SUCCEEDED, FAILED})


@dataclass(frozen=True, kw_only=True)
class Report(Message):
    """What a node says about an operation; applied once by the panel worker.

    `running` reports carry progress (`stage`, `percent`); the final one is
    `succeeded` or `failed` and is the last the panel applies.
    """

    operation_id: str
    node: str
    status: str
    facts: dict[str, Any] = field(default_factory=dict)
    error_code: str = ""
    message: str = ""
    duration_ms: int = 0
    log: list[str] = field(default_factory=list)
    stage: str = ""
    percent: int = 0

    def __post_init__(self) -> None:
        if self.status not in Status.ALL:
            raise ProtocolError(f"Report.status: unknown status {self.status!r}")
        if isinstance(self.percent, bool) or not isinstance(self.percent, int) or not 0 <= self.percent <= 100:
            raise ProtocolError(f"Report.percent: expected 0-100, got {self.percent!r}")


@dataclass(frozen=True, kw_only=True)
class Heartbeat(Message):
    """A node's periodic "alive" with what it is and what it has free.

    `facts`: kernel, machine, hostname, cgroup_version, templates (names); since 1.4 also
    template_info ({name: {version, checksum, distro, release, arch}}), storage ({default, pools:
    [{name, driver, capabilities}]}) and capabilities (cgroup version and verbs, freeze, quota levels).
    `capacity`: cpus, memory, swap, load1, vps_count; since 1.4 pools ({name: {total, used, free}} bytes).
    """

    node: str
    sent_at: float
    interval: int = HEARTBEAT_SECONDS
    facts: dict[str, Any] = field(default_factory=dict)
    capacity: dict[str, Any] = field(default_factory=dict)


# The counters of one VPS in a usage batch. Totals only, never deltas: each is
# monotonic within its `epoch` (the node keeps running totals across cgroup,
# worker and VPS restarts; a new epoch means the node lost them, and the
# panel starts counting afresh instead of computing a negative delta).
USAGE_COUNTERS: dict[str, str] = {
    "cpu_ns": "CPU time used, nanoseconds (total)",
    "net_rx_bytes": "bytes received by the VPS (total)",
    "net_tx_bytes": "bytes sent by the VPS (total)",
    "net_rx_packets": "packets received by the VPS (total)",
    "net_tx_packets": "packets sent by the VPS (total)",
}
# Gauges: the value at sampling time.
USAGE_GAUGES: dict[str, str] = {
    "ram_bytes": "memory in use",
    "swap_bytes": "swap in use",
    "disk_bytes": "disk space in use",
    "disk_inodes": "inodes in use",
    "processes": "processes and threads",
}

# Event counters (since 1.5): totals like USAGE_COUNTERS, but events, not a rate: the panel keeps
# what grew between two samples as a FailEvent (e.g. "2 processes killed").
USAGE_EVENTS: dict[str, str] = {
    "oom_kills": "processes the kernel's OOM killer ended inside the VPS (total)",
}

# Beancounter rows counted from the VPS's processes and namespaces (since 1.3), refreshed every
# CTPANEL_USAGE_ACCOUNTING_SECONDS on the node; failcnt is always 0 (no kernel counter exists).
ACCOUNTING_ROWS = ("numfile", "numtcpsock", "numothersock", "numpty", "numflock", "numiptent")


@dataclass(frozen=True, kw_only=True)
class UsageBatch(Message):
    """Every running VPS's counters on one node, sent every `interval` seconds.

    Each sample: {"ctid": int, "epoch": str, <USAGE_COUNTERS>, <USAGE_GAUGES>, <USAGE_EVENTS> (1.5),
    "beancounters": {row: {"held", "maxheld", "barrier", "limit", "failcnt"}}}.
    A missing key means the node cannot measure it. Since 1.3 `beancounters` also holds the
    accounting rows (`ACCOUNTING_ROWS`), counted less often: the node's last count is sent.
    """

    node: str
    sent_at: float
    interval: int
    samples: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for sample in self.samples:
            if not isinstance(sample, dict) or isinstance(sample.get("ctid"), bool) \
                    or not isinstance(sample.get("ctid"), int) or not isinstance(sample.get("epoch"), str):
                raise ProtocolError("UsageBatch.samples: each sample needs an integer ctid and a string epoch")
            for name in (*USAGE_COUNTERS, *USAGE_GAUGES, *USAGE_EVENTS):
                value = sample.get(name, 0)
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ProtocolError(f"UsageBatch.samples[{sample['ctid']}].{name}: expected a non-negative integer")


class Unit:
    BYTES = "bytes"
    BYTES_PER_SECOND = "bytes/s"
    BITS_PER_SECOND = "bits/s"
    COUNT = "count"
    PERCENT = "percent"
    WEIGHT = "weight"


# The VPS limits every message carries, named as vzctl names them (OpenVZ's
# vocabulary), in protocol units. 0 means "unlimited" for every limit except
# `cpus` (0 = all of the node's CPUs) and `cpuunits` (0 = the default weight).
# Plans map onto these names; the node maps them onto cgroups, rlimits and
# storage (DESIGN.md, "Beancounters").
LIMITS: dict[str, tuple[str, str]] = {
    "ram": (Unit.BYTES, "RAM (physpages)"),
    "swap": (Unit.BYTES, "swap on top of RAM (swappages)"),
    "diskspace": (Unit.BYTES, "disk space, hard limit"),
    "diskinodes": (Unit.COUNT, "inodes, hard limit"),
    "quotaugidlimit": (Unit.COUNT, "user/group ids with second-level quota; 0 = off"),
    "cpus": (Unit.COUNT, "visible CPUs"),
    "cpulimit": (Unit.PERCENT, "CPU time, percent of one CPU (may exceed 100)"),
    "cpuunits": (Unit.WEIGHT, "CPU weight relative to other VPSs"),
    "numproc": (Unit.COUNT, "processes and threads"),
    "numfile": (Unit.COUNT, "open files per process (RLIMIT_NOFILE)"),
    "iolimit": (Unit.BYTES_PER_SECOND, "disk bandwidth"),
    "iopslimit": (Unit.COUNT, "disk operations per second"),
    "rate_in": (Unit.BITS_PER_SECOND, "network rate into the VPS"),
    "rate_out": (Unit.BITS_PER_SECOND, "network rate out of the VPS"),
}


UGID_KINDS = ("user", "group")
UGID_MAX = 65535  # ids as the VPS sees them
UGID_FIELDS = ("space_soft", "space_hard", "inodes_soft", "inodes_hard")  # bytes, bytes, count, count; 0 = none


def check_ugid_quotas(quotas: Any, quotaugidlimit: int) -> list[dict[str, Any]]:
    """Second-level quotas: [{"kind": "user"|"group", "id": 0..65535, <UGID_FIELDS>}], one entry per
    kind and id, at most `quotaugidlimit` ids of each kind (none when it is 0), soft <= hard when both are set."""
    if not isinstance(quotas, list):
        raise ProtocolError("ugid_quotas: expected a list")
    seen: set[tuple[str, int]] = set()
    for quota in quotas:
        if not isinstance(quota, dict) or set(quota) != {"kind", "id", *UGID_FIELDS}:
            raise ProtocolError(f"ugid_quotas: each entry needs exactly kind, id, {', '.join(UGID_FIELDS)}")
        kind, ident = quota["kind"], quota["id"]
        if kind not in UGID_KINDS:
            raise ProtocolError(f"ugid_quotas: kind must be user or group, got {kind!r}")
        for name in ("id", *UGID_FIELDS):
            value = quota[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProtocolError(f"ugid_quotas.{name}: expected a non-negative integer, got {value!r}")
        if ident > UGID_MAX:
            raise ProtocolError(f"ugid_quotas.id: ids inside a VPS are 0..{UGID_MAX}, got {ident}")
        for soft, hard in (("space_soft", "space_hard"), ("inodes_soft", "inodes_hard")):
            if quota[soft] and quota[hard] and quota[soft] > quota[hard]:
                raise ProtocolError(f"ugid_quotas.{soft}: more than {hard} for {kind} {ident}")
        if (kind, ident) in seen:
            raise ProtocolError(f"ugid_quotas: {kind} {ident} appears twice")
        seen.add((kind, ident))
    for kind in UGID_KINDS:
        count = sum(1 for k, _ in seen if k == kind)
        if count > quotaugidlimit:
            raise ProtocolError(f"ugid_quotas: {count} {kind} quotas, but quotaugidlimit is {quotaugidlimit}")
    return quotas


def check_limits(limits: Any) -> dict[str, int]:
    """A limits mapping with known names and non-negative integer values only."""
    if not isinstance(limits, dict):
        raise ProtocolError("limits: expected an object")
    unknown = sorted(set(limits) - set(LIMITS))
    if unknown:
        raise ProtocolError(f"limits: unknown names {', '.join(unknown)}")
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProtocolError(f"limits.{name}: expected a non-negative integer, got {value!r}")
    return dict(limits)


# -- Browser console (docs/console.md) ---------------------------------------------------------------------
# The panel's web process and the node's console relay meet in Redis: the panel pushes a ConsoleOpen to
# the node's open list; each session then has one stream per direction. Nothing listens on the node.

CONSOLE_MODES = ("console", "shell")  # the VPS's console pty (supervisor) | a fresh login shell in the VPS
CONSOLE_TICKET_SECONDS = 30
CONSOLE_CHUNK = 16 * 1024  # bytes of output per stream entry
CONSOLE_BACKLOG = 64  # output entries not yet taken by the panel before the relay drops (console) or pauses (shell)
CONSOLE_INPUT_MAX = 64 * 1024  # bytes of one browser message
CONSOLE_KEEPALIVE_SECONDS = 5
CONSOLE_IDLE_SECONDS = 20  # a side that heard nothing of the other for this long ends the session
CONSOLE_SIZE_MAX = 1000  # columns or rows


def console_open_key(node: str) -> str:
    """The Redis list a node's relay pops session requests from."""
    return f"ctpanel:console:{validate_node_name(node)}:open"


def console_stream_keys(session: str) -> tuple[str, str]:
    """The session's Redis streams: (browser → VPS, VPS → browser)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,64}", session):
        raise ProtocolError("console session: not a session id")
    return f"ctpanel:console:s:{session}:in", f"ctpanel:console:s:{session}:out"


def console_size(cols: Any, rows: Any) -> tuple[int, int]:
    """A terminal size within bounds, or ProtocolError."""
    for value in (cols, rows):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CONSOLE_SIZE_MAX:
            raise ProtocolError(f"console size: expected 1..{CONSOLE_SIZE_MAX}, got {value!r}")
    return cols, rows


@dataclass(frozen=True, kw_only=True)
class ConsoleTicket(Message):
    """What the panel lets one user do once: open `mode` of VPS `ctid` on `node` before `expires`.

    The panel signs `signed_bytes()` with its key; the relay verifies that signature with the panel's
    certificate and checks node, expiry and single use again (the panel checked them first).
    """

    ticket_id: str
    user_id: int
    username: str
    ctid: int
    node: str
    mode: str
    expires: float  # Unix time

    def signed_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    def check(self, *, node: str, now: float) -> None:
        """Raise ProtocolError unless this ticket is for `node`, a known mode, and not expired at `now`."""
        if self.node != node:
            raise MisroutedMessage(f"console ticket for node {self.node!r}, this is {node!r}")
        if self.mode not in CONSOLE_MODES:
            raise ProtocolError(f"console ticket: unknown mode {self.mode!r}")
        if now > self.expires or self.expires - now > CONSOLE_TICKET_SECONDS + 5:
            raise ProtocolError("console ticket expired")


@dataclass(frozen=True, kw_only=True)
class ConsoleOpen(Message):
    """A session request on the node's open list: the signed ticket and the browser's terminal size."""

    session: str
    ticket: dict[str, Any]
    signature: str  # base64 of RSA PKCS#1 v1.5 / SHA-256 over ConsoleTicket.signed_bytes(), by the panel key
    cols: int
    rows: int
