import re

import pytest
from django.core import mail
from django.test import override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from panel.accounts import services
from panel.accounts.choices import AuthEventKind
from panel.accounts.models import AuthEvent
from tests.panel.tenants import PASSWORD, make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def login(client, username: str, password: str = PASSWORD, ip: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def code(device: TOTPDevice, drift: int = 0) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=drift):06d}"


def test_login_events_and_lockout_by_username_and_ip(client, settings):
    t = make_tenants()
    assert login(client, "customer1").status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, "customer1", "wrong-password")
    locked = login(client, "customer1")  # right password, still locked out from this address
    assert locked.status_code == 429
    assert login(client, "customer1", ip="198.51.100.7").status_code == 302  # another address is not locked
    kinds = list(AuthEvent.objects.filter(user=t.customer1).order_by("pk").values_list("kind", flat=True))
    assert kinds[:2] == [AuthEventKind.LOGIN, AuthEventKind.LOGOUT]
    assert kinds.count(AuthEventKind.LOGIN_FAILED) >= settings.AXES_FAILURE_LIMIT


@override_settings(CTPANEL_ADMIN_ALLOWED_IPS=["198.51.100.0/24"])
def test_admin_allow_list(client):
    t = make_tenants()
    refused = login(client, "admin", ip="203.0.113.9")
    assert refused.status_code == 200 and b"did not match" in refused.content
    assert AuthEvent.objects.filter(user=t.admin, kind=AuthEventKind.LOGIN_REFUSED_IP).exists()
    assert login(client, "admin", ip="198.51.100.20").status_code == 302
    assert client.get("/", REMOTE_ADDR="198.51.100.20").status_code == 200
    assert client.get("/", REMOTE_ADDR="203.0.113.9").status_code == 403  # the session is ended
    assert client.get("/", REMOTE_ADDR="198.51.100.20").status_code == 302
    assert login(client, "customer1", ip="203.0.113.9").status_code == 302  # only admins are limited
    _, key = services.create_token(t.admin, name="ops")
    assert client.get("/api/core/operations/", HTTP_AUTHORIZATION=f"Bearer {key}",
                      REMOTE_ADDR="203.0.113.9").status_code == 401


def test_enrol_and_then_verify_totp(client):
    t = make_tenants()
    client.force_login(t.customer1)
    page = client.get("/account/2fa/")
    assert page.status_code == 200 and b"<svg" in page.content
    device = TOTPDevice.objects.get(user=t.customer1, confirmed=False)
    wrong = "000000" if code(device) != "000000" else "111111"
    assert client.post("/account/2fa/", {"token": wrong}).status_code == 200
    device.refresh_from_db()
    assert device.throttling_failure_count == 1  # django-otp slows down guessing
    device.throttle_reset()  # as if the user waited
    assert client.post("/account/2fa/", {"token": code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed

    client.post("/logout/")
    assert login(client, "customer1").status_code == 302
    gated = client.get("/")
    assert gated.status_code == 302 and gated["Location"].startswith("/account/2fa/verify/")
    assert client.get("/api/accounts/users/").status_code == 403
    device.refresh_from_db()
    assert client.post("/account/2fa/verify/", {"token": code(device, drift=1), "next": "/"}).status_code == 302
    assert client.get("/").status_code == 200
    assert client.get("/api/accounts/users/").status_code == 200
    kinds = set(AuthEvent.objects.filter(user=t.customer1).values_list("kind", flat=True))
    assert {AuthEventKind.OTP_ENROLLED, AuthEventKind.OTP_VERIFIED, AuthEventKind.OTP_FAILED} <= kinds


@override_settings(CTPANEL_REQUIRE_2FA=True)
def test_site_setting_requires_2fa_for_admins_and_resellers_only(client):
    t = make_tenants()
    for user in (t.admin, t.reseller1):
        client.force_login(user)
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/account/2fa/?next=")
        assert client.get("/account/2fa/").status_code == 200
    client.force_login(t.customer1)
    assert client.get("/").status_code == 200


def test_password_reset_by_email(client):
    t = make_tenants()
    assert client.post("/password-reset/", {"email": "customer1@example.com"}).status_code == 302
    assert client.post("/password-reset/", {"email": "nobody@example.com"}).status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["customer1@example.com"]
    link = re.search(r"http://testserver(/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and b"new_password1" in form.content
    done = client.post(form.redirect_chain[-1][0], {"new_password1": "brand-new-passphrase-9",
                                                    "new_password2": "brand-new-passphrase-9"})
    assert done.status_code == 302
    t.customer1.refresh_from_db()
    assert t.customer1.check_password("brand-new-passphrase-9")
    assert AuthEvent.objects.filter(user=t.customer1, kind=AuthEventKind.PASSWORD_RESET).exists()
    assert client.get(link, follow=True).context["validlink"] is False
