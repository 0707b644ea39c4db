"""Secrets never reach the database, logs or the admin: redact before storing."""

from typing import Any

SECRET_KEYS = ("password", "passwd", "secret", "token", "private_key", "hash", "key")
REDACTED = "********"


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking field's value replaced."""
    if isinstance(value, dict):
        return {
            k: REDACTED if _is_secret(k) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _is_secret(key: Any) -> bool:
    name = str(key).lower()
    return any(part in name for part in SECRET_KEYS)
