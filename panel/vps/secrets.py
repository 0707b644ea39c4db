"""Root credentials for a VPS: passwords become SHA-512 crypt hashes here; SSH public keys are checked.

The plaintext password exists only in the request that sets it: it is
hashed in the panel and only the hash travels to the node (in that one
operation's message; the Operation's stored payload redacts it).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import warnings

from django.core.exceptions import ValidationError

with warnings.catch_warnings():
    # Deprecated since 3.11, removed in 3.13: replace with a pinned implementation before moving to 3.13.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

PASSWORD_MIN, PASSWORD_MAX = 8, 128
MAX_KEYS = 32
KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
_COMMENT = re.compile(r"^[\x20-\x7e]*$")


def crypt_sha512(password: str) -> str:
    """A "$6$" SHA-512 crypt hash of `password` with a random salt (what /etc/shadow holds)."""
    if not isinstance(password, str) or not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise ValidationError({"password": f"Use {PASSWORD_MIN} to {PASSWORD_MAX} characters."}, code="password")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ValidationError({"password": "Control characters are not allowed."}, code="password")
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def validate_ssh_key(line: str) -> str:
    """One OpenSSH public key line "TYPE BASE64 [comment]", normalised; ValidationError otherwise."""
    if not isinstance(line, str) or any(c in line for c in "\r\n\0") or len(line) > 16384:
        raise ValidationError("An SSH key is one line.", code="ssh_key")
    parts = line.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        raise ValidationError(f"Not an OpenSSH public key (types: {', '.join(sorted(KEY_TYPES))}).", code="ssh_key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError) as exc:
        raise ValidationError("The key's data is not valid.", code="ssh_key") from exc
    if inner != parts[0] or len(blob) <= 4 + length:
        raise ValidationError("The key's data does not match its type.", code="ssh_key")
    comment = parts[2] if len(parts) == 3 else ""
    if not _COMMENT.match(comment):
        raise ValidationError("The key's comment must be printable ASCII.", code="ssh_key")
    return " ".join(p for p in (parts[0], parts[1], comment) if p)


def validate_ssh_keys(keys: list[str]) -> list[str]:
    if not isinstance(keys, list) or len(keys) > MAX_KEYS:
        raise ValidationError({"ssh_keys": f"At most {MAX_KEYS} keys."}, code="ssh_key")
    checked = []
    for index, key in enumerate(keys):
        try:
            checked.append(validate_ssh_key(key))
        except ValidationError as exc:
            raise ValidationError({"ssh_keys": f"Key {index + 1}: {exc.messages[0]}"}, code="ssh_key") from exc
    return list(dict.fromkeys(checked))
