import datetime

import pytest
from django.utils import timezone

from panel.accounts import services
from panel.accounts.choices import AuthEventKind, TokenScope
from panel.accounts.models import ApiToken, AuthEvent
from tests.panel.tenants import make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_token_is_hashed_and_authenticates_the_api(client):
    t = make_tenants()
    token, key = services.create_token(t.customer1, name="ci", scope=TokenScope.WRITE)
    assert key.startswith("ctp_") and token.prefix == key[:12]
    assert key not in str(list(ApiToken.objects.values()))  # only the hash is stored
    response = client.get("/api/accounts/users/", **bearer(key))
    assert response.status_code == 200
    assert [u["username"] for u in response.json()["results"]] == ["customer1"]
    token.refresh_from_db()
    assert token.last_used is not None and token.last_used_ip == "127.0.0.1"
    client.get("/api/accounts/users/", **bearer(key))  # within a minute: no second event
    assert AuthEvent.objects.filter(token=token, kind=AuthEventKind.TOKEN_USED).count() == 1


def test_bad_expired_and_revoked_tokens_answer_401(client):
    t = make_tenants()
    assert client.get("/api/accounts/users/", **bearer("ctp_nope")).status_code == 401
    assert client.get("/api/accounts/users/").status_code == 401
    token, key = services.create_token(t.customer1, name="x")
    services.revoke_token(token)
    assert client.get("/api/accounts/users/", **bearer(key)).status_code == 401
    token, key = services.create_token(t.customer1, name="y", expires=timezone.now() + datetime.timedelta(hours=1))
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - datetime.timedelta(seconds=1))
    assert client.get("/api/accounts/users/", **bearer(key)).status_code == 401
    assert AuthEvent.objects.filter(kind=AuthEventKind.TOKEN_REFUSED).count() == 2


def test_read_scope_cannot_write(client):
    t = make_tenants()
    _, read_key = services.create_token(t.reseller1, name="ro", scope=TokenScope.READ)
    _, write_key = services.create_token(t.reseller1, name="rw", scope=TokenScope.WRITE)
    body = {"name": "r1-plan", "ram": 2**30}
    denied = client.post("/api/plans/plans/", body, content_type="application/json", **bearer(read_key))
    assert denied.status_code == 403 and "read-only" in denied.json()["detail"]
    created = client.post("/api/plans/plans/", body, content_type="application/json", **bearer(write_key))
    assert created.status_code == 201, created.content


def test_token_api_shows_the_key_once_and_delete_revokes(client):
    t = make_tenants()
    client.force_login(t.customer1)
    created = client.post("/api/accounts/tokens/", {"name": "deploy", "scope": "write"},
                          content_type="application/json")
    assert created.status_code == 201
    key, token_id = created.json()["key"], created.json()["id"]
    assert "key" not in client.get(f"/api/accounts/tokens/{token_id}/").json()
    client.logout()
    assert client.get("/api/accounts/tokens/", **bearer(key)).json()["count"] == 1
    assert client.delete(f"/api/accounts/tokens/{token_id}/", **bearer(key)).status_code == 204
    assert client.get("/api/accounts/tokens/", **bearer(key)).status_code == 401
    assert ApiToken.objects.get(pk=token_id).revoked_at is not None


def test_token_pages(client):
    t = make_tenants()
    client.force_login(t.customer1)
    page = client.post("/account/tokens/", {"name": "web", "scope": "read"})
    assert page.status_code == 200 and b'id="new-token"' in page.content
    token = ApiToken.objects.get(user=t.customer1)
    other, _ = services.create_token(t.customer2, name="theirs")
    assert client.post(f"/account/tokens/{other.pk}/revoke/").status_code == 404
    assert client.post(f"/account/tokens/{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
