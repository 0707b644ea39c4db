"""The panel's signing serializer binds a node's message to the node its certificate names: two real node
keys (RSA-3072, self-signed, as `python -m worker.keys ensure` makes them), each signing reports."""

from __future__ import annotations

import base64
import datetime
import os
import shutil
from pathlib import Path

import pytest
from celery.exceptions import SecurityError
from celery.security.certificate import Certificate
from celery.security.key import PrivateKey
from celery.security.serialization import SecureSerializer

from panel.core.signing import NodeBoundSerializer, Signer, TrustStore
from worker import keys, protocol

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(key, certificate) of the panel, nodes a and b, and a certificate that names no node."""
    top = tmp_path_factory.mktemp("keys")
    return {name: keys.ensure(top, cert_name) for name, cert_name in (
        ("panel", "panel"), ("a", protocol.node_signer_name("a")), ("b", protocol.node_signer_name("b")),
        ("rogue", "rogue"))}


def trust_dir(tmp_path: Path, pairs, *names: str) -> Path:
    directory = tmp_path / "trusted-by-panel"
    directory.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(pairs[name][1], directory / pairs[name][1].name)
    return directory


def panel_serializer(pairs, directory: Path) -> NodeBoundSerializer:
    key, cert = pairs["panel"]
    return NodeBoundSerializer(PrivateKey(key.read_text()), Signer.from_pem(cert.read_bytes()),
                               TrustStore(str(directory)), "sha256")


def signed(pairs, signer: str, args: list, kwargs: dict | None = None) -> bytes:
    """A Celery task body ([args, kwargs, embed]) as the `auth` serializer of `signer` sends it."""
    key, cert = pairs[signer]
    node_side = SecureSerializer(PrivateKey(key.read_text()), Certificate(cert.read_text()), None, "sha256")
    return node_side.serialize([args, kwargs or {}, EMBED])


def report(node: str) -> dict:
    return protocol.Report(operation_id="00000000-0000-4000-8000-000000000001", node=node,
                           status=protocol.Status.SUCCEEDED).to_dict()


def test_a_node_signs_for_itself_only(tmp_path, pairs):
    panel = panel_serializer(pairs, trust_dir(tmp_path, pairs, "panel", "a", "b"))
    for node in ("a", "b"):
        args, kwargs, _ = panel.deserialize(signed(pairs, node, [report(node)]))
        assert args == [report(node)] and kwargs == {}
    for signer, named in (("a", "b"), ("b", "a")):
        with pytest.raises(protocol.MisroutedMessage, match=f"naming node '{named}' was signed by node {signer}'s"):
            panel.deserialize(signed(pairs, signer, [report(named)]))
    heartbeat = protocol.Heartbeat(node="b", sent_at=1795000000.0).to_dict()
    with pytest.raises(protocol.MisroutedMessage) as refused:
        panel.deserialize(signed(pairs, "a", [heartbeat]))
    assert refused.value.code == "protocol.misrouted"
    # The body's node named elsewhere than the one argument, or a second body: refused too.
    for args, kwargs in (([], {"body": report("b")}), ([report("a"), report("b")], {}), ([report("a")], {"x": 1}),
                         (["a"], {})):
        with pytest.raises(protocol.MisroutedMessage, match="only send one message body naming itself"):
            panel.deserialize(signed(pairs, "a", args, kwargs))


def test_the_panels_own_certificate_may_send_anything_and_a_certificate_naming_no_node_nothing(tmp_path, pairs):
    panel = panel_serializer(pairs, trust_dir(tmp_path, pairs, "panel", "a", "rogue"))
    assert panel.deserialize(signed(pairs, "panel", [report("b")]))[0] == [report("b")]
    assert panel.deserialize(signed(pairs, "panel", []))[0] == []  # beat's periodic tasks
    with pytest.raises(protocol.UntrustedMessage, match="'rogue' names no node"):
        panel.deserialize(signed(pairs, "rogue", [report("a")]))


def test_a_node_certificate_added_later_is_trusted_without_a_restart(tmp_path, pairs):
    directory = trust_dir(tmp_path, pairs, "panel", "a")
    panel = panel_serializer(pairs, directory)
    with pytest.raises(SecurityError, match="Unknown certificate"):
        panel.deserialize(signed(pairs, "b", [report("b")]))
    trust_dir(tmp_path, pairs, "b")
    (directory / "README").write_text("not a certificate")  # logged and skipped
    assert panel.deserialize(signed(pairs, "b", [report("b")]))[0] == [report("b")]
    os.remove(directory / pairs["b"][1].name)
    panel.store.recheck_seconds = 0  # (a second by default)
    assert panel.deserialize(signed(pairs, "a", [report("a")]))[0] == [report("a")]
    with pytest.raises(SecurityError, match="Unknown certificate"):  # removed: no longer trusted
        panel.deserialize(signed(pairs, "b", [report("b")]))


def test_an_altered_body_is_refused_and_kombus_typed_values_still_decode(tmp_path, pairs):
    panel = panel_serializer(pairs, trust_dir(tmp_path, pairs, "panel"))
    when = datetime.datetime(2026, 11, 28, 6, 0, tzinfo=datetime.UTC)
    data = signed(pairs, "panel", [{"at": when}])
    assert panel.deserialize(data)[0] == [{"at": when}]  # kombu's json tags a datetime; plain JSON has none
    head, body = base64.b64decode(data).rsplit(b"\x00\x01", 1)
    altered = base64.b64encode(head + b"\x00\x01" + body.replace(b"2026", b"2027"))
    with pytest.raises(SecurityError, match="Unable to deserialize"):
        panel.deserialize(altered)


def test_node_names_in_certificates():
    assert protocol.node_signer_name("n1") == "node-n1"
    assert protocol.node_of_signer("node-n1") == "n1"
    for common_name in ("panel", "node-", "node-N1", "n1", "node-../x"):
        assert protocol.node_of_signer(common_name) is None, common_name
