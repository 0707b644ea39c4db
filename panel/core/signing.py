"""The panel's message signing: Celery's `auth` serializer, with node messages bound to their signer.

Celery verifies a message against every certificate in the trust store
alike, and tells the task nothing about who signed it. So a node could sign
a report, heartbeat or usage batch naming another node. The panel's
serializer checks, after Celery's signature check, that a message signed by
a node's certificate (common name "node-<name>", `protocol.node_of_signer`)
is one body naming that node: `[[{"node": "<name>", ...}], {}, {...}]`, the
shape of every node → panel task. The panel's own certificate (beat, the
panel's own tools) may send anything. A refused message is logged with its
error code (`protocol.misrouted`, or `protocol.untrusted` for a certificate
naming no node) and dropped by the consumer like any undecodable message;
the operation it names is left alone, so one node cannot fail another's.

The trust store (CTPANEL_TRUSTED_CERTS, a directory of PEM certificates) is
read again when it changed: a node's certificate added later is trusted
without restarting the panel worker, one removed is no longer trusted a
second later.

A usage batch (the panel worker's bulk of work: one per node a minute, large)
is verified once, in the pool child that runs it: its task's strategy
(`deferred_decode`) leaves the body undecoded in the worker's main process,
which by default decodes, and so verifies, every message only to look at it,
and then verifies it again in the child. The main process still refuses a
message whose content type is not accepted (an unsigned one); the child
refuses a bad signature or a misrouted body, logged the same way, and the
message is acknowledged and dropped without running the task.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.app.task import Task
from celery.exceptions import SecurityError
from celery.security.certificate import Certificate, CertStore
from celery.security.key import PrivateKey
from celery.security.serialization import SecureSerializer
from celery.security.utils import reraise_errors
from celery.worker.strategy import default as default_strategy
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from kombu.exceptions import ContentDisallowed
from kombu.serialization import loads, prepare_accept_content, registry
from kombu.utils.encoding import bytes_to_str

from worker import protocol

log = logging.getLogger(__name__)
SIGNED_CONTENT_TYPE = "application/data"  # what Celery's `auth` serializer registers


@dataclass(frozen=True)
class Signer:
    cert: Certificate
    common_name: str
    fingerprint: str  # SHA-256 of the DER certificate

    @classmethod
    def from_pem(cls, pem: bytes) -> Signer:
        parsed = x509.load_pem_x509_certificate(pem)
        names = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return cls(cert=Certificate(pem), common_name=str(names[0].value) if names else "",
                   fingerprint=hashlib.sha256(parsed.public_bytes(Encoding.DER)).hexdigest())


class TrustStore(CertStore):
    """The trusted certificates by Celery's signer id (issuer and serial), with their common names.

    Read again when the directory or a file in it changed: at once for an
    unknown signer, at most every `recheck_seconds` otherwise (a removed
    certificate is distrusted that soon).
    """

    recheck_seconds = 1.0

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.signers: dict[str, Signer] = {}
        self._stamp: tuple[Any, ...] = ()
        self._checked = time.monotonic()
        self._load()

    def _files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.path, "*"))) if os.path.isdir(self.path) else [self.path]

    def _stamp_now(self) -> tuple[Any, ...]:
        def mtime(name: str) -> int | None:
            try:
                return os.stat(name).st_mtime_ns
            except OSError:  # removed meanwhile
                return None

        return tuple((name, mtime(name)) for name in [self.path, *self._files()])

    def _load(self) -> None:
        stamp = self._stamp_now()
        signers: dict[str, Signer] = {}
        for name in self._files():
            try:
                signer = Signer.from_pem(Path(name).read_bytes())
            except (OSError, ValueError, SecurityError) as exc:  # one bad file must not distrust the others
                log.error("not trusting %s: %s", name, exc)
                continue
            signer_id = signer.cert.get_id()
            if signer.cert.has_expired() or signer_id in signers:
                log.error("not trusting %s: %s", name, "expired" if signer.cert.has_expired() else
                          f"the same issuer and serial as {signers[signer_id].common_name!r}")
                continue
            signers[signer_id] = signer
        self.signers, self._certs, self._stamp = signers, {k: s.cert for k, s in signers.items()}, stamp

    def signer(self, signer_id: bytes | str) -> Signer:
        key = bytes_to_str(signer_id)
        now = time.monotonic()
        if key not in self.signers or now - self._checked >= self.recheck_seconds:
            self._checked = now
            if self._stamp_now() != self._stamp:
                self._load()
        try:
            return self.signers[key]
        except KeyError:
            raise SecurityError(f"Unknown certificate: {key!r}") from None

    def __getitem__(self, signer_id: bytes | str) -> Certificate:
        return self.signer(signer_id).cert


class NodeBoundSerializer(SecureSerializer):
    """Celery's signing serializer; a node's message must name the node whose certificate signed it."""

    def __init__(self, key: PrivateKey, own: Signer, store: TrustStore, digest: str) -> None:
        super().__init__(key, own.cert, store, digest)
        self.store = store
        self.own_fingerprint = own.fingerprint

    def deserialize(self, data: Any) -> Any:
        """Celery's SecureSerializer.deserialize with the payload unpacked once (the signer is needed
        afterwards), then the signer's check."""
        try:
            with reraise_errors("Unable to deserialize: {0!r}", (Exception,)):
                payload = self._unpack(data)
                signer = self.store.signer(payload["signer"])
                signer.cert.verify(payload["body"], payload["signature"], self._digest)
        except SecurityError as exc:
            log.error("refused a message (%s): %s", protocol.UntrustedMessage.code, exc)
            raise
        decoded = _decoded(payload)
        try:
            check_signer(signer, decoded, own_fingerprint=self.own_fingerprint)
        except protocol.ProtocolError as exc:
            log.error("refused a message (%s): %s", exc.code, exc)
            raise
        return decoded


def _decoded(payload: dict[str, Any]) -> Any:
    """The verified body. JSON without kombu's type tags ({"__type__": ..., "__value__": ...}, which no
    protocol body has) is plain JSON: the stdlib decoder without kombu's hook, called for every object."""
    body = payload["body"]
    if payload["content_type"] == "application/json" and b'"__type__"' not in body:
        return json.loads(body)
    return loads(body, payload["content_type"], payload["content_encoding"], force=True)


def check_signer(signer: Signer, decoded: Any, *, own_fingerprint: str) -> None:
    """Raise MisroutedMessage unless `signer` may send this decoded task body (Celery's [args, kwargs, embed])."""
    if signer.fingerprint == own_fingerprint:
        return
    node = protocol.node_of_signer(signer.common_name)
    if node is None:
        raise protocol.UntrustedMessage(f"the signing certificate {signer.common_name!r} names no node "
                                        f"(a node's is {protocol.NODE_SIGNER_PREFIX}<name>)")
    args, kwargs = (decoded[0], decoded[1]) if isinstance(decoded, list | tuple) and len(decoded) == 3 else (None, None)
    if not (isinstance(args, list) and len(args) == 1 and isinstance(args[0], dict) and kwargs == {}):
        raise protocol.MisroutedMessage(f"node {node} may only send one message body naming itself")
    named = args[0].get("node")
    if named != node:
        raise protocol.MisroutedMessage(f"a message naming node {named!r} was signed by node {node}'s certificate")


def deferred_decode(task: Task, app: Celery, consumer: Any, **kwargs: Any) -> Any:
    """Celery's default task strategy, without decoding (and verifying) the body in the main process.

    A task's `Strategy`. The body goes to the pool child as it came; the child's
    decode verifies it (Celery decodes a protocol 2 body there whatever the
    main process did). Only Celery's own task protocol 2 is deferred: a message
    without the `task` header (protocol 1) comes with its body decoded."""
    handle = default_strategy(task, app, consumer, **kwargs)
    accept = prepare_accept_content(app.conf.accept_content)

    def task_message_handler(message: Any, body: Any, *args: Any, **kw: Any) -> Any:
        if body is None:
            if message.content_type not in accept:
                raise ContentDisallowed(f"Refusing to deserialize untrusted content of type "
                                        f"{message.content_type} (a {task.name} message)")
            # What the main process sees as the decoded body: Celery's task protocol 2 [args, kwargs, embed],
            # empty (kombu's Message.payload answers it without decoding); the pool child decodes the real one.
            message._decoded_cache = ([], {}, {})
        return handle(message, body, *args, **kw)

    return task_message_handler


def register(app: Celery) -> NodeBoundSerializer:
    """Replace the `auth` serializer that `app.setup_security()` registered with the node-bound one."""
    conf = app.conf
    serializer = NodeBoundSerializer(
        PrivateKey(Path(conf.security_key).read_text(), password=conf.security_key_password),
        Signer.from_pem(Path(conf.security_certificate).read_bytes()),
        TrustStore(conf.security_cert_store),
        conf.security_digest,
    )
    registry.register("auth", serializer.serialize, serializer.deserialize, content_type=SIGNED_CONTENT_TYPE,
                      content_encoding="utf-8")
    return serializer
