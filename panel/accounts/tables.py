from django.urls import reverse

from panel.core.tables import Column, Table


def user_url(user) -> str:
    return reverse("user", args=[user.pk])


class UserTable(Table):
    columns = [
        Column("username", "User name", link=user_url),
        Column("email", "E-mail"),
        Column("role"),
        Column("owner__username", "Reseller", order_by="owner__username"),
        Column("is_active", "Status", template="accounts/cells/status.html"),
        Column("date_joined", "Since"),
        Column("last_login", "Last login"),
    ]
    default_order = "username"
    empty_text = "No users match."


class CustomerTable(UserTable):
    columns = [c for c in UserTable.columns if c.name not in ("role", "owner__username")]
    empty_text = "No customers yet. Add one with the button above."
