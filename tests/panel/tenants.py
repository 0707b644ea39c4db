"""Two tenants per role, for permission tests: every object of the other tenant must stay invisible."""

from __future__ import annotations

from dataclasses import dataclass

from django.test import Client

from panel.accounts.choices import Role
from panel.accounts.models import User

PASSWORD = "pw-" + "x" * 12


@dataclass
class Tenants:
    admin: User
    admin2: User
    reseller1: User
    reseller2: User
    customer1: User  # reseller1's
    customer1b: User  # reseller1's
    customer2: User  # reseller2's
    customer0: User  # the admin's own

    def of_role(self, role: str) -> tuple[User, User]:
        """(a user of `role`, the same role in the other tenant)."""
        return {Role.ADMIN: (self.admin, self.admin2), Role.RESELLER: (self.reseller1, self.reseller2),
                Role.CUSTOMER: (self.customer1, self.customer2)}[role]


def make_tenants(prefix: str = "") -> Tenants:
    def user(name: str, role: str, owner: User | None = None) -> User:
        return User.objects.create_user(prefix + name, email=f"{prefix}{name}@example.com", password=PASSWORD,
                                        role=role, owner=owner)

    r1, r2 = user("reseller1", Role.RESELLER), user("reseller2", Role.RESELLER)
    return Tenants(admin=user("admin", Role.ADMIN), admin2=user("admin2", Role.ADMIN), reseller1=r1, reseller2=r2,
                   customer1=user("customer1", Role.CUSTOMER, r1), customer1b=user("customer1b", Role.CUSTOMER, r1),
                   customer2=user("customer2", Role.CUSTOMER, r2), customer0=user("customer0", Role.CUSTOMER))


def client_for(user: User) -> Client:
    """A test client signed in as `user`."""
    client = Client()
    client.force_login(user)
    return client
