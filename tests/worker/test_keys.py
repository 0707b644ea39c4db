import stat

from celery.security.certificate import Certificate
from celery.security.key import PrivateKey
from celery.security.utils import get_digest_algorithm

from worker import keys


def test_key_pair_signs_what_its_certificate_verifies(tmp_path):
    key_path, cert_path = keys.ensure(tmp_path, "panel")
    digest = get_digest_algorithm("sha256")
    signature = PrivateKey(key_path.read_text()).sign(b"body", digest)
    Certificate(cert_path.read_text()).verify(b"body", signature, digest)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_ensure_keeps_an_existing_pair(tmp_path):
    first = [p.read_bytes() for p in keys.ensure(tmp_path, "node-a")]
    second = [p.read_bytes() for p in keys.ensure(tmp_path, "node-a")]
    assert first == second


def test_each_pair_has_its_own_signer_id(tmp_path):
    ids = {Certificate(keys.ensure(tmp_path, name)[1].read_text()).get_id() for name in ("a", "b")}
    assert len(ids) == 2
