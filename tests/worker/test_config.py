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


def test_storage_and_network_settings():
    config = NodeConfig.from_env({**GOOD, "CTPANEL_STORAGE_POOLS": "fast:btrfs:/vz/btrfs, img:image:/vz/images",
                                  "CTPANEL_NET_OPEN_TCP": "53,8080", "CTPANEL_NET_UPLINK": "eth0"})
    assert config.storage_pools == (("fast", "btrfs", "/vz/btrfs"), ("img", "image", "/vz/images"))
    assert (config.net_open_tcp, config.net_open_udp, config.net_uplink) == ((53, 8080), (), "eth0")
    defaults = NodeConfig.from_env(GOOD)
    assert (defaults.storage_pools, defaults.net_uplink, defaults.net_host_netns) == ((), None, None)


@pytest.mark.parametrize(("name", "value"), [("CTPANEL_STORAGE_POOLS", "fast:btrfs:relative"),
                                             ("CTPANEL_STORAGE_POOLS", "fast"),
                                             ("CTPANEL_NET_OPEN_TCP", "53,http"),
                                             ("CTPANEL_NET_OPEN_UDP", "70000"),
                                             ("CTPANEL_NODE_CONCURRENCY", "0"),
                                             ("CTPANEL_NODE_CONCURRENCY", "many")])
def test_bad_storage_or_network_setting_names_itself(name, value):
    with pytest.raises(ConfigError, match=name):
        NodeConfig.from_env({**GOOD, name: value})


def test_pool_size():
    assert NodeConfig.from_env(GOOD).concurrency == 16
    assert NodeConfig.from_env({**GOOD, "CTPANEL_NODE_CONCURRENCY": "4"}).concurrency == 4
