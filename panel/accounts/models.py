from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from panel.accounts.choices import Role


class User(AbstractUser):
    """A person using the panel: an admin, a reseller or a customer.

    A customer belongs to a reseller (`owner`) or, with no owner, directly
    to the hosting company's admins. Admins and resellers have no owner.
    """

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CUSTOMER)
    owner = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="customers",
        limit_choices_to={"role": Role.RESELLER},
        help_text="The reseller this customer belongs to; empty for the admin's own customers.",
    )

    objects = UserManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=True) | Q(role=Role.CUSTOMER),
                name="accounts_user_only_customers_have_owner",
            ),
        ]

    def clean(self) -> None:
        super().clean()
        if self.owner_id is not None:
            if self.role != Role.CUSTOMER:
                raise ValidationError({"owner": "Only customers belong to a reseller."})
            if self.owner.role != Role.RESELLER:
                raise ValidationError({"owner": "A customer's owner must be a reseller."})

    def save(self, *args, **kwargs) -> None:
        # Admins manage everything, including through Django's admin site;
        # nobody else gets into it.
        is_admin = self.role == Role.ADMIN
        self.is_staff = is_admin
        self.is_superuser = is_admin
        super().save(*args, **kwargs)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_reseller(self) -> bool:
        return self.role == Role.RESELLER

    @property
    def is_customer(self) -> bool:
        return self.role == Role.CUSTOMER
