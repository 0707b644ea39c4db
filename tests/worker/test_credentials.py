"""Root's credentials as the node writes them into a VPS (kernel/credentials.py): pure rendering."""

import pytest

from kernel import credentials
from kernel.errors import InvalidArgument


def test_credentials_rendering_keeps_other_lines():
    shadow = "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"
    assert credentials.render_shadow(shadow, "$6$s$h", today=20000) == (
        "root:$6$s$h:20000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n")
    keys = credentials.render_authorized_keys("ssh-ed25519 AAAA own\n", ["k1", "k2"])
    assert keys.splitlines() == ["ssh-ed25519 AAAA own", credentials.KEYS_BEGIN, "k1", "k2", credentials.KEYS_END]
    assert credentials.render_authorized_keys(keys, []) == "ssh-ed25519 AAAA own\n"


def test_a_hash_that_could_add_a_shadow_field_is_refused():
    for bad in ("plain", "$6$a:b", "$6$a\nroot::0", ""):
        with pytest.raises(InvalidArgument):
            credentials.render_shadow("", bad)
