"""The VPS samples file (deploy/samples/vswap.json): one source for seeded plans and ve-*.conf-sample.

Format (docs/samples.md): {"format": 1, "samples": {NAME: {"description": str,
"limits": {every protocol.LIMITS name: int}, "plan": {panel-only fields}}}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings

from worker import protocol

FORMAT = 1
PLAN_ONLY_FIELDS = ("traffic", "over_quota_action", "throttle_rate", "ipv4_count", "ipv6_mode", "ipv6_count",
                    "backup_slots")


def samples_path() -> Path:
    return Path(settings.BASE_DIR) / "deploy" / "samples" / "vswap.json"


def load_samples(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every sample, checked: all protocol limits present and valid, equal rates both ways."""
    data = json.loads((path or samples_path()).read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"samples file format {data.get('format')!r}; this panel reads format {FORMAT}")
    samples = data["samples"]
    for name, sample in samples.items():
        limits = protocol.check_limits(sample["limits"])
        missing = sorted(set(protocol.LIMITS) - set(limits))
        if missing:
            raise ValueError(f"sample {name}: limits missing {', '.join(missing)}")
        if limits["rate_in"] != limits["rate_out"]:
            raise ValueError(f"sample {name}: a plan has one port speed, so rate_in must equal rate_out")
        unknown = sorted(set(sample.get("plan", {})) - set(PLAN_ONLY_FIELDS))
        if unknown:
            raise ValueError(f"sample {name}: unknown plan fields {', '.join(unknown)}")
    return samples
