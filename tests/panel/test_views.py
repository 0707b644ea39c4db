import pytest
from django.core.management import call_command

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.models import Operation
from panel.nodes.models import Node

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def users():
    return {role: User.objects.create_user(role.value, password="pw-" + "x" * 12, role=role) for role in Role}


def test_login_page_and_login(client, users):
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post("/login/", {"username": "admin", "password": "wrong"})
    assert b"did not match" in bad.content
    good = client.post("/login/", {"username": "admin", "password": "pw-" + "x" * 12})
    assert good.status_code == 302 and good["Location"] == "/"
    assert b"Administrator" in client.get("/").content


def test_dashboard_needs_login(client):
    assert client.get("/")["Location"].startswith("/login/")


def test_nodes_and_admin_are_for_admins_only(client, users):
    Node.objects.create(name="n1")
    for role in (Role.RESELLER, Role.CUSTOMER):
        client.force_login(users[role])
        assert client.get("/nodes/").status_code == 403
        assert client.post("/nodes/n1/ping/").status_code == 403
        assert client.get("/admin/").status_code == 302
    assert not Operation.objects.exists()
    client.force_login(users[Role.ADMIN])
    assert client.get("/nodes/").status_code == 200
    assert client.get("/admin/core/operation/").status_code == 200


def test_every_response_carries_a_request_id(client):
    response = client.get("/login/", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    assert len(client.get("/login/", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"]) == 32


def test_register_node_is_idempotent_and_validates(capsys):
    call_command("register_node", "n1")
    call_command("register_node", "n1")
    assert Node.objects.filter(name="n1").count() == 1
    with pytest.raises(Exception, match="invalid node name"):
        call_command("register_node", "Bad_Name")
