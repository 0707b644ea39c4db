from panel.core.redaction import REDACTED, redact


def test_secrets_are_redacted_at_any_depth():
    payload = {
        "hostname": "web1",
        "root_password_hash": "$6$salt$hash",
        "credentials": {"password": "hunter2", "ssh_keys": ["ssh-ed25519 AAAA"]},
        "items": [{"api_token": "t"}, {"name": "x"}],
        "empty_password": "",
    }
    out = redact(payload)
    assert out["hostname"] == "web1"
    assert out["root_password_hash"] == REDACTED
    assert out["credentials"]["password"] == REDACTED
    assert out["items"][0]["api_token"] == REDACTED
    assert out["items"][1] == {"name": "x"}
    assert out["empty_password"] == ""
    assert payload["credentials"]["password"] == "hunter2"
