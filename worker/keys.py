"""Key pairs for Celery's message signing.

The panel signs every request it sends to nodes; each node signs its
reports. Celery's `auth` serializer needs an RSA key and an X.509
certificate per signer; ours are self-signed, with a random serial so the
(issuer, serial) pair Celery uses as a signer id is unique.

    python -m worker.keys ensure --dir DIR --name NAME [--group GROUP]

writes DIR/NAME.key (0600, or 0640 to GROUP) and DIR/NAME.crt (0644) once;
running it again keeps the existing pair. A node's NAME is `node-<node name>`
(`protocol.node_signer_name`): the panel accepts a node's messages only when
they name the node its certificate names.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

VALID_DAYS = 3650


def generate(name: str) -> tuple[bytes, bytes]:
    """A new RSA-3072 key and a self-signed certificate for `name`, both PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ctpanel"),
        x509.NameAttribute(NameOID.COMMON_NAME, name),
    ])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def ensure(directory: Path, name: str, group: str | None = None) -> tuple[Path, Path]:
    """Create DIR/NAME.key and DIR/NAME.crt unless both exist; return their paths."""
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    if not (key_path.exists() and cert_path.exists()):
        key_pem, cert_pem = generate(name)
        directory.mkdir(parents=True, exist_ok=True)
        _write(key_path, key_pem, 0o600)
        _write(cert_path, cert_pem, 0o644)
    if group:
        os.chown(key_path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(key_path, 0o640)
    return key_path, cert_path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.keys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ensure", help="create a key pair unless it exists")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--group", help="group that may read the private key (the panel's user)")
    args = parser.parse_args(argv)
    ensure(args.dir, args.name, args.group)
    return 0


if __name__ == "__main__":
    sys.exit(main())
