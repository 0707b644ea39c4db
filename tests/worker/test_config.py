import pytest

from worker.config import ConfigError, NodeConfig

GOOD = {
    "CTPANEL_NODE_NAME": "n1",
    "CTPANEL_BROKER_URL": "redis://:pw@127.0.0.1:6390/0",
    "CTPANEL_SIGNING_KEY": "/k/n1.key",
    "CTPANEL_SIGNING_CERT": "/k/n1.crt",
    "CTPANEL_TRUSTED_CERTS": "/k/trusted",
}


def test_config_from_environment():
    config = NodeConfig.from_env(GOOD)
    assert config.queue == "node.n1"
    assert config.panel_queue == "panel"
    assert config.state_root == "/var/lib/ctpanel/node/n1"


@pytest.mark.parametrize("missing", sorted(GOOD))
def test_missing_setting_names_itself(missing):
    env = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        NodeConfig.from_env(env)


def test_bad_node_name_is_refused():
    with pytest.raises(ConfigError, match="CTPANEL_NODE_NAME"):
        NodeConfig.from_env({**GOOD, "CTPANEL_NODE_NAME": "../etc"})
