"""Accounts: users within their tenant, API tokens, sign-in rules and auth events."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from panel.accounts.choices import AuthEventKind, Role, TokenScope
from panel.accounts.models import ApiToken, AuthEvent, User

TOKEN_PREFIX = "ctp_"  # noqa: S105 - a marker, not a secret
TOKEN_USE_EVENT_SECONDS = 60


def client_ip(request: Any) -> str | None:
    """The peer address. Behind a proxy, the ASGI server sets it from the proxy's headers."""
    value = getattr(request, "META", {}).get("REMOTE_ADDR") if request is not None else None
    try:
        return str(ipaddress.ip_address(value)) if value else None
    except ValueError:
        return None


def record_event(kind: str, *, user: Any = None, request: Any = None, username: str = "",
                 token: ApiToken | None = None) -> AuthEvent:
    agent = request.META.get("HTTP_USER_AGENT", "")[:200] if request is not None else ""
    return AuthEvent.objects.create(kind=kind, user=user, username=username or getattr(user, "username", ""),
                                    ip=client_ip(request), user_agent=agent, token=token)


def ip_allowed(user: Any, ip: str | None) -> bool:
    """Admins only from CTPANEL_ADMIN_ALLOWED_IPS (when set); everybody else from anywhere."""
    networks = settings.CTPANEL_ADMIN_ALLOWED_IPS
    if not networks or not getattr(user, "is_admin", False):
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def two_factor_mandatory(user: Any) -> bool:
    """The site requires 2FA of admins and resellers when CTPANEL_REQUIRE_2FA is set."""
    return settings.CTPANEL_REQUIRE_2FA and user.role in (Role.ADMIN, Role.RESELLER)


def two_factor_required(user: Any) -> bool:
    """A user must pass 2FA if they enrolled, or if the site requires it for their role."""
    return two_factor_mandatory(user) or TOTPDevice.objects.filter(user=user, confirmed=True).exists()


# --- users -----------------------------------------------------------------------------------------

USER_FIELDS = ("username", "email", "first_name", "last_name")


def create_user(actor: Any, *, username: str, password: str | None = None, role: str = Role.CUSTOMER,
                owner: User | None = None, **fields: Any) -> User:
    """Admins create anyone; a reseller creates its own customers; customers nobody."""
    if actor.is_reseller:
        if role != Role.CUSTOMER or (owner is not None and owner != actor):
            raise PermissionDenied("A reseller creates only its own customers.")
        owner = actor
    elif not actor.is_admin:
        raise PermissionDenied("Customers cannot create users.")
    user = User(username=username, role=role, owner=owner, **{k: v for k, v in fields.items() if k in USER_FIELDS})
    if password:
        validate_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    return user


def update_user(actor: Any, user: User, **fields: Any) -> User:
    """Names, e-mail and password of users `actor` may change; role and owner are the admin's.

    A reseller may also (de)activate its own customers.
    """
    if not actor.is_admin:
        if {"role", "owner"} & set(fields):
            raise PermissionDenied("Only an admin changes a user's role or owner.")
        if "is_active" in fields and user.owner_id != actor.pk:
            raise PermissionDenied("Only an admin or the customer's reseller (de)activates a user.")
    if user.pk == actor.pk and ("role" in fields or fields.get("is_active") is False):
        raise PermissionDenied("You cannot change your own role or deactivate yourself.")
    password = fields.pop("password", None)
    for name, value in fields.items():
        if name in (*USER_FIELDS, "role", "owner", "is_active"):
            setattr(user, name, value)
    if password:
        validate_password(password, user)
        user.set_password(password)
    user.full_clean(exclude=["password"])
    user.save()
    return user


def delete_user(actor: Any, user: User) -> None:
    if user.pk == actor.pk:
        raise PermissionDenied("You cannot delete yourself.")
    if user.is_admin and not actor.is_admin:
        raise PermissionDenied("Only an admin deletes an admin.")
    try:
        user.delete()
    except ProtectedError as exc:
        raise ValidationError("This user still owns customers; move or delete them first.") from exc


# --- API tokens ------------------------------------------------------------------------------------

def hash_key(key: str) -> str:
    """Keys are 30 random bytes: a plain SHA-256 is enough (no password stretching needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_token(user: Any, *, name: str, scope: str = TokenScope.READ,
                 expires: datetime.datetime | None = None, request: Any = None) -> tuple[ApiToken, str]:
    """A new token and its key; the key is never stored and cannot be shown again."""
    if scope not in TokenScope.values:
        raise ValidationError({"scope": f"One of {', '.join(TokenScope.values)}."})
    if expires is not None and expires <= timezone.now():
        raise ValidationError({"expires": "The expiry must be in the future."})
    key = TOKEN_PREFIX + secrets.token_urlsafe(30)
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name, prefix=key[:12], key_hash=hash_key(key),
                                        scope=scope, expires=expires)
        record_event(AuthEventKind.TOKEN_CREATED, user=user, request=request, token=token)
    return token, key


def revoke_token(token: ApiToken, *, request: Any = None) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_event(AuthEventKind.TOKEN_REVOKED, user=token.user, request=request, token=token)
    return token


class TokenRefused(Exception):
    pass


def authenticate_token(key: str, request: Any = None) -> ApiToken:
    """The active token for `key`, its use recorded; TokenRefused otherwise."""
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_key(key)).first()
    if token is None:
        raise TokenRefused("Invalid token.")
    if not token.is_active or not token.user.is_active:
        record_event(AuthEventKind.TOKEN_REFUSED, user=token.user, request=request, token=token)
        raise TokenRefused("Token expired or revoked.")
    ip = client_ip(request)
    if not ip_allowed(token.user, ip):
        record_event(AuthEventKind.TOKEN_REFUSED, user=token.user, request=request, token=token)
        raise TokenRefused("Token not usable from this address.")
    now = timezone.now()
    if token.last_used is None or now - token.last_used >= datetime.timedelta(seconds=TOKEN_USE_EVENT_SECONDS):
        ApiToken.objects.filter(pk=token.pk).update(last_used=now, last_used_ip=ip)
        record_event(AuthEventKind.TOKEN_USED, user=token.user, request=request, token=token)
    return token
