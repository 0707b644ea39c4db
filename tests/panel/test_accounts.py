import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError

from panel.accounts.choices import Role
from panel.accounts.models import User

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_only_admins_are_staff():
    admin = User.objects.create_user("boss", password="x" * 12, role=Role.ADMIN)
    reseller = User.objects.create_user("res", password="x" * 12, role=Role.RESELLER)
    customer = User.objects.create_user("cus", password="x" * 12, role=Role.CUSTOMER)
    assert admin.is_staff and admin.is_superuser
    assert not reseller.is_staff and not customer.is_staff and not customer.is_superuser


def test_customer_belongs_to_a_reseller_or_to_the_admin():
    reseller = User.objects.create_user("res", role=Role.RESELLER)
    User(username="c1", role=Role.CUSTOMER, owner=reseller).full_clean(exclude=["password"])
    User(username="c2", role=Role.CUSTOMER).full_clean(exclude=["password"])

    other_customer = User.objects.create_user("c3", role=Role.CUSTOMER)
    with pytest.raises(ValidationError, match="must be a reseller"):
        User(username="c4", role=Role.CUSTOMER, owner=other_customer).full_clean(exclude=["password"])
    with pytest.raises(ValidationError, match="Only customers"):
        User(username="r2", role=Role.RESELLER, owner=reseller).full_clean(exclude=["password"])


def test_database_refuses_an_owner_for_non_customers():
    reseller = User.objects.create_user("res", role=Role.RESELLER)
    with pytest.raises(IntegrityError):
        User.objects.create_user("r2", role=Role.RESELLER, owner=reseller)


def test_ensure_admin_creates_once(monkeypatch, capsys):
    monkeypatch.setenv("CTPANEL_ADMIN_USER", "root-admin")
    monkeypatch.delenv("CTPANEL_ADMIN_PASSWORD", raising=False)
    call_command("ensure_admin")
    first = capsys.readouterr().out
    assert "password" in first
    call_command("ensure_admin")
    assert "exists" in capsys.readouterr().out
    assert User.objects.filter(role=Role.ADMIN).count() == 1
    password = first.split("password '")[1].split("'")[0]
    assert User.objects.get(username="root-admin").check_password(password)


def test_ensure_admin_refuses_to_take_over_a_customer(monkeypatch):
    User.objects.create_user("admin", role=Role.CUSTOMER)
    monkeypatch.setenv("CTPANEL_ADMIN_USER", "admin")
    with pytest.raises(CommandError, match="not an active admin"):
        call_command("ensure_admin")
    assert User.objects.get(username="admin").role == Role.CUSTOMER
