from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from panel.accounts.choices import AuthEventKind, Role, TokenScope
from panel.core.permissions import CHANGE, RestrictedQuerySet, is_admin, tenant_q


class UserQuerySet(RestrictedQuerySet):
    """Admins: everybody. A reseller: itself and its customers. A customer: itself."""

    def permission_q(self, user: Any, action: str) -> Q:
        if not getattr(user, "is_authenticated", False):
            return Q(pk__in=[])
        if is_admin(user):
            return Q()
        if getattr(user, "is_reseller", False):
            return Q(pk=user.pk) | Q(owner=user)
        return Q(pk=user.pk)


class PanelUserManager(UserManager.from_queryset(UserQuerySet)):
    pass


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

    objects = PanelUserManager()

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


class OwnRowsQuerySet(RestrictedQuerySet):
    """Rows of one user (field `user`): admins view all, everybody changes only their own."""

    def permission_q(self, user: Any, action: str) -> Q:
        if not getattr(user, "is_authenticated", False):
            return Q(pk__in=[])
        if action != CHANGE and is_admin(user):
            return Q()
        return Q(user=user)


class ApiToken(models.Model):
    """A credential for the REST API. Only its SHA-256 is stored; the key is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The key's first characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = OwnRowsQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires is None or self.expires > timezone.now())


class AuthEventQuerySet(RestrictedQuerySet):
    def permission_q(self, user: Any, action: str) -> Q:
        return tenant_q(user, "user") if action != CHANGE else Q(pk__in=[])


class AuthEvent(models.Model):
    """A login, logout, 2FA step or API token use (token use: at most one per token per minute)."""

    time = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="auth_events")
    username = models.CharField(max_length=150, blank=True, help_text="As typed, for failed logins")
    kind = models.CharField(max_length=32, choices=AuthEventKind.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")

    objects = AuthEventQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [models.Index(fields=["user", "-time"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.username}"
