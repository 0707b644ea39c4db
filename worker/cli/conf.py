"""OpenVZ-style `CTID.conf` files and `ve-<name>.conf-sample` plan files.

Both are `KEY="value"` lines. The registry (`<state_root>/ct/CTID.json`) stays
the runtime's truth; `CTID.conf` is the administrator's view of it plus the
limits of the sample the VPS was created from. Samples are generated from
deploy/samples/vswap.json, the file the panel seeds its plans from, so a node's
`ve-vswap-256m.conf-sample` and the panel's `vswap-256m` plan never disagree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re

from worker.cli.codes import NO_CONFIG, Fail

PAGE = 4096
KB = 1024
UNLIMITED = "unlimited"
_KEY = re.compile(r'^([A-Z][A-Z0-9_]*)="([^"\n]*)"$')
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

# protocol limit name -> (conf key, unit divisor, "pair" = barrier:limit like vzctl's UBC lines)
LIMIT_KEYS: dict[str, tuple[str, int, str]] = {
    "ram": ("PHYSPAGES", PAGE, "zero-barrier"),
    "swap": ("SWAPPAGES", PAGE, "zero-barrier"),
    "diskspace": ("DISKSPACE", KB, "pair"),
    "diskinodes": ("DISKINODES", 1, "pair"),
    "quotaugidlimit": ("QUOTAUGIDLIMIT", 1, "plain"),
    "cpus": ("CPUS", 1, "plain"),
    "cpulimit": ("CPULIMIT", 1, "plain"),
    "cpuunits": ("CPUUNITS", 1, "plain"),
    "numproc": ("NUMPROC", 1, "pair"),
    "numfile": ("NUMFILE", 1, "pair"),
    "iolimit": ("IOLIMIT", 1, "plain"),
    "iopslimit": ("IOPSLIMIT", 1, "plain"),
    "rate_in": ("RATE_IN", 1, "plain"),
    "rate_out": ("RATE_OUT", 1, "plain"),
}


def format_conf(values: dict[str, str], header: str) -> str:
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in values.items():
        if not re.match(r"^[A-Z][A-Z0-9_]*$", key) or '"' in value or "\n" in value or "\\" in value:
            raise ValueError(f"cannot write {key}={value!r} into a conf file")
        lines.append(f'{key}="{value}"')
    return "\n".join(lines) + "\n"


def parse_conf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _KEY.match(line)
        if not match:
            raise ValueError(f"line {number}: expected KEY=\"value\": {raw!r}")
        out[match.group(1)] = match.group(2)
    return out


def limits_to_conf(limits: dict[str, int]) -> dict[str, str]:
    """The conf lines of the limits given (a sample names them all; a VPS's beancounters some)."""
    out = {}
    for name, (key, unit, kind) in LIMIT_KEYS.items():
        if name not in limits:
            continue
        value = limits[name]
        if value % unit:
            raise ValueError(f"{name}={value} is not a multiple of {unit}")
        number = str(value // unit)
        if kind == "plain":
            out[key] = number
        elif value == 0:
            out[key] = f"{UNLIMITED}:{UNLIMITED}" if kind == "pair" else f"0:{UNLIMITED}"
        else:
            out[key] = f"{number}:{number}" if kind == "pair" else f"0:{number}"
    return out


def limits_from_conf(values: dict[str, str]) -> dict[str, int]:
    """The inverse of `limits_to_conf` (the limit is the second half of a pair)."""
    out = {}
    for name, (key, unit, kind) in LIMIT_KEYS.items():
        text = values[key] if kind == "plain" else values[key].rpartition(":")[2]
        out[name] = 0 if text == UNLIMITED else int(text) * unit
    return out


def write_atomic(path: str, text: str, mode: int = 0o644) -> None:
    """Replace `path`: readers see the old or the new file, never half of it."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_samples(path: str) -> dict[str, dict[str, int]]:
    """name -> limits from a format-1 samples file (docs/samples.md)."""
    from worker.protocol import LIMITS

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if data.get("format") != 1:
        raise ValueError(f"{path}: unknown samples format {data.get('format')!r}")
    out = {}
    for name, sample in data["samples"].items():
        limits = sample["limits"]
        if not _NAME.match(name) or set(limits) != set(LIMITS):
            raise ValueError(f"{path}: sample {name!r} must name every limit of worker.protocol.LIMITS")
        out[name] = {k: int(limits[k]) for k in LIMITS}
    return out


def sample_path(conf_dir: str, name: str) -> str:
    return os.path.join(conf_dir, f"ve-{name}.conf-sample")


def ensure_samples(conf_dir: str, samples: str) -> list[str]:
    """(Re)write every `ve-<name>.conf-sample` whose content differs from the samples file."""
    os.makedirs(conf_dir, 0o755, exist_ok=True)
    written = []
    for name, limits in load_samples(samples).items():
        header = f"ctpanel sample {name}: generated from {os.path.basename(samples)}; edits are overwritten"
        text = format_conf(limits_to_conf(limits), header)
        path = sample_path(conf_dir, name)
        try:
            with open(path, encoding="utf-8") as fh:
                if fh.read() == text:
                    continue
        except FileNotFoundError:
            pass
        write_atomic(path, text)
        written.append(path)
    return written


def read_sample(conf_dir: str, samples: str, name: str) -> dict[str, str]:
    if not _NAME.match(name):
        raise Fail(NO_CONFIG, f"Sample config {name!r} not found")
    ensure_samples(conf_dir, samples)
    try:
        with open(sample_path(conf_dir, name), encoding="utf-8") as fh:
            return parse_conf(fh.read())
    except FileNotFoundError:
        raise Fail(NO_CONFIG, f"Sample config {sample_path(conf_dir, name)} not found") from None


def ct_conf_path(conf_dir: str, ctid: int) -> str:
    return os.path.join(conf_dir, f"{ctid}.conf")


def read_ct_conf(conf_dir: str, ctid: int) -> dict[str, str]:
    try:
        with open(ct_conf_path(conf_dir, ctid), encoding="utf-8") as fh:
            return parse_conf(fh.read())
    except FileNotFoundError:
        return {}


def write_ct_conf(conf_dir: str, ctid: int, values: dict[str, str]) -> None:
    os.makedirs(conf_dir, 0o755, exist_ok=True)
    header = (f"CT {ctid}, written by vzctl. The node registry is the runtime's truth;\n"
              "change this VPS with `vzctl set`, not by editing this file.")
    write_atomic(ct_conf_path(conf_dir, ctid), format_conf(values, header))


def remove_ct_conf(conf_dir: str, ctid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(ct_conf_path(conf_dir, ctid))
