"""`vzctl`: OpenVZ's VPS command on a ctpanel node (docs/cli.md).

Exit codes are OpenVZ's (`worker.cli.codes`). `exec`, `exec2`, `enter` and
`console` are parsed by hand and import only what they use: they are the hot path.
When the node supervisor runs (worker/supervisor), start/stop/restart go
through it, so it parents the init and holds the console; else through the
library directly (the supervisor adopts the VPS when it starts).
"""

from __future__ import annotations

import contextlib
import os
import sys

from worker.cli import codes
from worker.cli.codes import Fail

TYPE_CHECKING = False  # importing typing costs milliseconds on exec's path
if TYPE_CHECKING:
    import argparse

    from kernel.runtime import Runtime
    from worker.cli.config import CliConfig

CHANGES = ("start", "stop", "restart", "destroy", "mount", "umount", "pause", "resume", "set")
DETACH = b"\x1b."
ENTER_SHELL = "command -v bash >/dev/null && exec bash -l; exec sh -l"


def runtime(config: CliConfig, *, wired: bool = True) -> Runtime:
    """The node worker's wiring: storage pools (the node's storage.json), network (CTPANEL_NET_*)
    and the beancounters hook, so create/start/set here do what the panel's operations do.
    Readying the node (pools, forwarding, the node's nft table) stays the set-up's and the
    worker's. `wired=False`: a bare runtime for reads (status)."""
    if not wired:
        from kernel.runtime import Runtime

        return Runtime(config.kernel())
    from kernel.storage.volumes import Storage
    from worker import vps

    node = config.kernel()
    return vps.wired(node, Storage(node), config.network())


def parse_ctid(text: str) -> int:
    if not text.isdigit() or not 100 <= int(text) <= 2**31 - 1:
        raise Fail(codes.BAD_VALUE, f"Invalid CTID: {text!r}")
    return int(text)


# -- exec / exec2 / enter: the lean path (kernel.running + kernel.enter, no Runtime) -------------
LEAN = ("exec", "exec2", "enter")


def _running_init(state_root: str, ctid: int) -> tuple[int | None, dict[str, str]]:
    """The init PID (None: not running) and outer cgroup paths, from the runtime's plain-text init
    record (no json import); from the registry and the JSON state for a VPS started before those
    records were written."""
    from kernel import running

    found = running.read_init(os.path.join(state_root, "run", f"{ctid}.init"))
    if found is not None:
        return found
    record, pid = running.lookup(state_root, ctid)
    return pid, record["cgroups"] if record else {}  # type: ignore[return-value]


def _init_of(state_root: str, ctid: int) -> tuple[dict[str, str], int]:
    """The outer cgroup paths and init PID of a running, unpaused VPS; else OpenVZ's exit code."""
    from kernel import running

    if not os.path.exists(os.path.join(state_root, "ct", f"{ctid}.json")):
        raise Fail(codes.NO_PRIVATE, f"Container {ctid} does not exist")
    pid, outer = _running_init(state_root, ctid)
    if pid is None:
        raise Fail(codes.NOT_RUNNING, "Container is not running")
    if running.frozen(outer):
        raise Fail(codes.NOT_RUNNING, "Container is paused (vzctl resume first)")
    return outer, pid


def cmd_exec(state_root: str, args: list[str], *, own_code: bool, in_place: bool = False) -> int:
    """`exec`: 8 when the command fails; `exec2`: the command's own code. Args run via `sh -c`.
    `in_place`: this process ends with the command (`_attach`)."""
    if len(args) < 2:
        raise Fail(codes.BAD_SYNTAX, "Usage: vzctl exec|exec2 CTID command [arg ...]")
    ctid = parse_ctid(args[0])
    argv = ["sh", "-c", " ".join(args[1:])]
    code = _attach(state_root, ctid, argv, tty=os.isatty(0), in_place=in_place)
    if own_code or code == 0:
        return code
    print(f"Command failed with exit code {code}", file=sys.stderr)  # vzctl's wording is close to this
    return codes.COMMAND_FAILED


def cmd_enter(state_root: str, args: list[str]) -> int:
    if len(args) != 1:
        raise Fail(codes.BAD_SYNTAX, "Usage: vzctl enter CTID")
    ctid = parse_ctid(args[0])
    _init_of(state_root, ctid)
    if not os.isatty(0):
        print("enter: stdin is not a terminal; relaying it anyway", file=sys.stderr)
    print(f"entered into CT {ctid}", file=sys.stderr)
    code = _attach(state_root, ctid, ["sh", "-c", ENTER_SHELL], tty=True)
    print(f"exited from CT {ctid}", file=sys.stderr)
    return code


def _attach(state_root: str, ctid: int, argv: list[str], *, tty: bool, in_place: bool = False) -> int:
    """Run `argv` in the VPS with the caller's stdio relayed; a new pty of the VPS when `tty`.

    As `Runtime.spawn` does it, from the node's files instead of a Runtime: the pidfd is
    taken, then the init checked again (it may have exited and its PID been reused).
    `in_place` (the program itself, which exits after): without a terminal, this process
    enters the VPS and starts the command itself (`kernel.helper.exec_here`), no helper forked.
    The terminal path keeps its helper: the relay there imports what it needs when it runs."""
    from kernel import helper, running
    from worker.cli import relay

    outer, pid = _init_of(state_root, ctid)
    pidfd = os.pidfd_open(pid)
    started = attached = None
    try:
        if _running_init(state_root, ctid)[0] != pid:
            raise Fail(codes.NOT_RUNNING, "Container is not running")
        mounts = {name: os.path.dirname(os.path.dirname(path)) for name, path in outer.items()}
        procs, home = running.inner_procs(outer), helper.own_procs(mounts)
        if in_place and not tty:
            started = helper.exec_here(pidfd, procs, argv, home_procs=home)
        else:
            from kernel import enter  # the caller's side of a forked helper (kernel.helper does the rest)

            attached = enter.spawn_in(pidfd, procs, argv, tty=tty, home_procs=home)
    finally:
        os.close(pidfd)
    if started is not None:
        return _relay_here(*started)
    assert attached is not None
    try:
        if attached.master is not None:
            relay.pty(attached.master)
        else:
            child_in, child_out, child_err = attached.stdin, attached.stdout, attached.stderr
            attached.stdin = None  # relay.pipes closes it when the caller's input ends
            assert child_in is not None and child_out is not None and child_err is not None
            relay.pipes(child_in, child_out, child_err)
    finally:
        attached.close()
    return attached.wait()


def _relay_here(command: int, child_in: int, child_out: int, child_err: int) -> int:
    """Relay to the command `exec_here` started from this process; its exit code. Runs inside the
    VPS: everything it uses was imported before."""
    from kernel import helper
    from worker.cli import relay

    try:
        relay.pipes(child_in, child_out, child_err)
    except BaseException:
        helper.wait_command(command, kill=True)
        raise
    return helper.wait_command(command)


def cmd_console(config: CliConfig, args: list[str]) -> int:
    """Attach to the console the supervisor holds; `Esc .` detaches, the VPS keeps running."""
    from worker.cli import relay
    from worker.supervisor.client import Client

    if len(args) != 1:
        raise Fail(codes.BAD_SYNTAX, "Usage: vzctl console CTID")
    ctid = parse_ctid(args[0])
    client = Client.for_state_root(config.state_root)
    if client is None:
        raise Fail(codes.SYSTEM_ERROR, "vzctl console needs the node supervisor (python -m worker.supervisor)")
    _init_of(config.state_root, ctid)
    sock = client.console(ctid)
    try:
        relay.pty(sock.fileno(), detach=DETACH, banner=f"Attached to CT {ctid} console (Esc . detaches)\r\n".encode())
    finally:
        sock.close()
    print(f"\r\nDetached from CT {ctid} console", file=sys.stderr)
    return codes.OK


def _via_supervisor(config: CliConfig, op: str, **args: object) -> bool:
    """True when this node's supervisor ran `op` (it then parents the init and holds its console)."""
    from worker.supervisor.client import try_request

    return try_request(config.state_root, op, **args) is not None


# -- changes -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    import argparse

    from worker.cli import beancounters, disk, vznet

    parser = argparse.ArgumentParser(prog="vzctl", description="Manage VPSs on this ctpanel node.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("ctid")
        if name in CHANGES:
            p.add_argument("--force", action="store_true", help="change a panel-managed VPS (reported as drift)")
        return p

    p = command("create", "create a VPS from an OS template")
    p.add_argument("--ostemplate", required=True)
    p.add_argument("--hostname", default="")
    p.add_argument("--config", default="", help="sample name: ve-NAME.conf-sample")
    p.add_argument("--layout", help="storage pool, or a driver (image, btrfs, dir); default: the node's pool")
    disk.add_arguments(p)
    command("start", "start a VPS")
    command("stop", "stop a VPS").add_argument("--fast", action="store_true", help="kill at once")
    command("restart", "stop and start a VPS")
    command("status", "print the VPS's status line")
    command("destroy", "remove a stopped VPS and its files")
    command("mount", "show the VPS's root at the node's root/CTID")
    command("umount", "remove the host view made by mount")
    command("pause", "freeze every process of the VPS")
    command("resume", "thaw a paused VPS")
    p = command("set", "change settings")
    vznet.add_arguments(p)
    p.add_argument("--hostname")
    p.add_argument("--onboot", choices=("yes", "no"))
    disk.add_arguments(p)
    beancounters.add_arguments(p)
    p.add_argument("--save", action="store_true",
                   help="store beancounter changes for the next start (other settings are always saved)")
    sub.add_parser("exec", help="run a command in a VPS; 8 when it fails")
    sub.add_parser("exec2", help="run a command in a VPS; its own exit code")
    sub.add_parser("enter", help="a shell in a VPS on a new pty of its own")
    sub.add_parser("console", help="attach to the VPS's console (needs the node supervisor)")
    return parser


def _refuse_panel_managed(rt: Runtime, ctid: int, force: bool) -> bool:
    """True when the change is forced on a panel-managed VPS (to be recorded as drift)."""
    record = rt.registry.find(ctid)
    if record is None or not record.panel_managed:
        return False
    if not force:
        raise Fail(codes.NO_ACCESS, f"CT {ctid} is managed by the panel: change it there "
                   "(--force changes it here and the panel is told of the drift)")
    return True


def record_drift(config: CliConfig, ctid: int, command: str, detail: dict[str, object]) -> None:
    """Append to <state_root>/drift/<ctid>.json, which the node worker's reconcile reports."""
    import time

    from kernel import statefile
    from kernel.errors import NotFound

    statefile.ensure_dir(config.drift_dir)
    path = os.path.join(config.drift_dir, f"{ctid}.json")
    with statefile.flocked(path + ".lock"):
        try:
            entries = statefile.read_json(path)
        except NotFound:
            entries = []
        entries.append({"ctid": ctid, "command": command, "time": time.time(), **detail})
        statefile.write_json(path, entries)


def _exists(rt: Runtime, ctid: int) -> None:
    if rt.registry.find(ctid) is None:
        raise Fail(codes.NO_PRIVATE, f"Container {ctid} does not exist")


def cmd_create(config: CliConfig, rt: Runtime, ns: argparse.Namespace, ctid: int) -> str:
    from kernel import debootstrap
    from kernel.errors import NotFound
    from kernel.runtime import CreateSpec
    from kernel.storage.base import Limits as DiskLimits
    from worker import vps
    from worker.cli import beancounters, conf, disk

    if rt.registry.find(ctid) is not None:
        raise Fail(codes.PRIVATE_EXISTS, f"Container {ctid} already exists")
    sample = conf.read_sample(config.conf_dir, config.samples, ns.config) if ns.config else {}
    bc, notes = beancounters.from_sample(sample) if sample else (None, [])
    try:
        if ns.ostemplate == "busybox":
            rt.templates.ensure_busybox()
        elif ns.ostemplate in debootstrap.RELEASES:  # from the machine's cache; built when missing (minutes)
            debootstrap.ensure_debian(rt.templates, ns.ostemplate)
        rt.templates.verify(ns.ostemplate)
    except NotFound:
        raise Fail(codes.TEMPLATE_NOT_FOUND, f"OS template {ns.ostemplate!r} not found") from None
    if ns.hostname:
        _check_hostname(ns.hostname)
    limits = disk.limits(ns, disk.from_conf(sample, DiskLimits()))
    record = rt.create(CreateSpec(ctid=ctid, template=ns.ostemplate, hostname=ns.hostname,
                                  layout=disk.pool_for(rt, ns.layout), limits=limits))
    values = {
        "OSTEMPLATE": record.template,
        "HOSTNAME": record.hostname,
        "ONBOOT": "no",
        "VE_PRIVATE": record.volume,
        "VE_ROOT": rt.root_path(ctid),
    }
    if ns.config:
        values["ORIGIN_SAMPLE"] = ns.config
    if bc is not None:
        vps.save_beancounters(rt, ctid, bc)
        sample = {**sample, **beancounters.conf_values(bc)}
    conf.write_ct_conf(config.conf_dir, ctid, {**values, **sample, **disk.conf_values(limits)})
    return "\n".join([*notes, f"Container {ctid} created from {ns.ostemplate}"])


def _check_hostname(hostname: str) -> None:
    from kernel import vpsfiles
    from kernel.errors import InvalidArgument

    try:
        vpsfiles.check_hostname(hostname)
    except InvalidArgument as exc:
        raise Fail(codes.BAD_HOSTNAME, f"Invalid hostname: {exc}") from None


def cmd_set(config: CliConfig, rt: Runtime, ns: argparse.Namespace, ctid: int) -> str:
    from worker.cli import beancounters, conf, disk, vznet

    bc = beancounters.requested(ns)
    if ns.hostname is None and ns.onboot is None and not disk.requested(ns) and not vznet.given(ns) and not bc:
        raise Fail(codes.BAD_SYNTAX, "Nothing to set: --hostname, --onboot, --diskspace, --diskinodes, "
                   "--quotaugidlimit, a network option or a beancounter (--ram, --numproc, ...)")
    _exists(rt, ctid)
    change = beancounters.parse(rt, ctid, ns) if bc else None  # every value checked before any change
    lines = []
    if change is not None:
        beancounters.refuse_stopped(rt, ctid, ns.save)
        lines = beancounters.apply(rt, ctid, change, save=ns.save)
    limits = disk.set_limits(rt, ctid, disk.limits(ns, rt.storage.get(ctid).limits)) if disk.requested(ns) else None
    net_values = {}
    if vznet.given(ns):
        with rt.lock(ctid):
            net_values = vznet.apply(config.network(), ctid, ns)
    if ns.hostname is not None:
        _check_hostname(ns.hostname)
        rt.set_hostname(ctid, ns.hostname)
    if ns.onboot is not None:
        rt.set_onboot(ctid, ns.onboot == "yes")
    record = rt.registry.get(ctid)
    values = conf.read_ct_conf(config.conf_dir, ctid)
    values.update(HOSTNAME=record.hostname, ONBOOT="yes" if record.onboot else "no")
    values.setdefault("OSTEMPLATE", record.template)
    values.setdefault("VE_PRIVATE", record.volume)
    values.setdefault("VE_ROOT", rt.root_path(ctid))
    if limits is not None:
        values.update(disk.conf_values(limits))
    values.update(net_values)
    if change is not None and ns.save:
        values.update(beancounters.conf_values(change.new))
    conf.write_ct_conf(config.conf_dir, ctid, values)
    others = ns.hostname is not None or ns.onboot is not None or limits is not None or bool(net_values)
    if change is None or ns.save or others:  # beancounters without --save: the warning says so
        lines.append(f"Saved parameters for CT {ctid}")
    return "\n".join(lines)


def cmd_change(config: CliConfig, rt: Runtime, ns: argparse.Namespace, ctid: int) -> str:
    """start/stop/restart/destroy/mount/umount/pause/resume with OpenVZ's checks first."""
    _exists(rt, ctid)
    status = rt.status(ctid)
    command = ns.command
    if command == "start":
        if status.running:
            raise Fail(codes.RUNNING, "Container is already running")
        if not _via_supervisor(config, "start", ctid=ctid):
            rt.start(ctid)
        return "Container start in progress... started"
    if command == "stop":
        if not status.running:
            raise Fail(codes.NOT_RUNNING, "Unable to stop: container is not running")
        if not _via_supervisor(config, "stop", ctid=ctid, fast=ns.fast):
            rt.stop(ctid, fast=ns.fast)
        if rt.status(ctid).running:
            raise Fail(codes.STOP_ERROR, "Unable to stop container")
        return "Container was stopped"
    if command == "restart":
        if not _via_supervisor(config, "restart", ctid=ctid):
            rt.restart(ctid)
        return "Container restarted"
    if command == "destroy":
        if status.running:
            raise Fail(codes.RUNNING, "Container is currently running. Stop it first.")
        from kernel import statefile
        from worker import vps
        from worker.cli import conf

        rt.destroy(ctid)
        conf.remove_ct_conf(config.conf_dir, ctid)
        statefile.remove(vps.beancounters_path(rt, ctid))
        return "Container private area was destroyed"
    if command == "mount":
        if status.mounted:
            raise Fail(codes.MOUNTED, "Container is already mounted")
        rt.mount(ctid)
        return f"Container is mounted at {rt.root_path(ctid)}"
    if command == "umount":
        if status.running:
            raise Fail(codes.RUNNING, "Container is running -- stop it first")
        if not status.mounted:
            raise Fail(codes.NOT_MOUNTED, "Container is not mounted")
        rt.umount(ctid)
        return "Container is unmounted"
    if not status.running:
        raise Fail(codes.NOT_RUNNING, "Container is not running")
    if command == "pause":
        rt.freeze(ctid)
        return "Container is paused"
    rt.thaw(ctid)
    return "Container is resumed"


def run(argv: list[str], config: CliConfig) -> int:
    if argv and argv[0] in ("exec", "exec2"):
        return cmd_exec(config.state_root, argv[1:], own_code=argv[0] == "exec2")
    if argv and argv[0] == "enter":
        return cmd_enter(config.state_root, argv[1:])
    if argv and argv[0] == "console":
        return cmd_console(config, argv[1:])
    try:
        ns = _parser().parse_args(argv)
    except SystemExit as exc:
        return codes.OK if exc.code == 0 else codes.BAD_SYNTAX
    ctid = parse_ctid(ns.ctid)
    rt = runtime(config, wired=ns.command != "status")
    if ns.command == "status":
        print(rt.status(ctid).vzctl_line())
        return codes.OK
    if ns.command == "create":
        print(cmd_create(config, rt, ns, ctid))
        return codes.OK
    forced = _refuse_panel_managed(rt, ctid, ns.force)
    message = cmd_set(config, rt, ns, ctid) if ns.command == "set" else cmd_change(config, rt, ns, ctid)
    if forced:
        detail = {k: v for k, v in vars(ns).items() if k not in ("command", "ctid", "force") and v not in (None, False)}
        record_drift(config, ctid, ns.command, detail)
    print(message)
    return codes.OK


def _lean(argv: list[str], *, in_place: bool) -> int:
    from worker.cli import nodeenv

    state_root = nodeenv.state_root()
    if argv[0] == "enter":
        return cmd_enter(state_root, argv[1:])
    return cmd_exec(state_root, argv[1:], own_code=argv[0] == "exec2", in_place=in_place)


def main(argv: list[str] | None = None) -> int:
    """Run one command; as the program (`argv` None), `exec`/`exec2`/`enter` end the process
    themselves (`_exit`: interpreter finalization costs milliseconds, and their path leaves
    nothing to finalize but the stdio buffers, flushed first)."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in LEAN:  # the hot path: no CliConfig (dataclasses), no Runtime
        code = codes.handled(lambda: _lean(args, in_place=argv is None))
        if argv is None:
            _exit(code)
        return code
    return codes.command_main(run, args)


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a closed pipe: what is left of the output is lost either way
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
