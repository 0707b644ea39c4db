import pytest
from django.core.exceptions import ImproperlyConfigured

from panel.settings.base import env, env_list


def test_missing_required_setting_names_itself_and_the_fix(monkeypatch):
    monkeypatch.delenv("CTPANEL_SOMETHING", raising=False)
    with pytest.raises(ImproperlyConfigured, match=r"CTPANEL_SOMETHING is not set.*ctl up"):
        env("CTPANEL_SOMETHING")
    monkeypatch.setenv("CTPANEL_SOMETHING", "  ")
    with pytest.raises(ImproperlyConfigured):
        env("CTPANEL_SOMETHING")
    assert env("CTPANEL_SOMETHING", "fallback") == "fallback"


def test_lists(monkeypatch):
    monkeypatch.setenv("CTPANEL_HOSTS", "a.example, b.example,,")
    assert env_list("CTPANEL_HOSTS") == ["a.example", "b.example"]


def test_vps_nameservers_are_addresses(monkeypatch):
    from panel.settings.base import _addresses

    monkeypatch.setenv("CTPANEL_VPS_NAMESERVERS", "198.51.100.53, 2001:db8::53")
    assert _addresses("CTPANEL_VPS_NAMESERVERS") == ["198.51.100.53", "2001:db8::53"]
    monkeypatch.setenv("CTPANEL_VPS_NAMESERVERS", "198.51.100.53, ns1.example\nsearch evil")
    with pytest.raises(ImproperlyConfigured, match="CTPANEL_VPS_NAMESERVERS"):
        _addresses("CTPANEL_VPS_NAMESERVERS")
