"""What every API view shares: pagination, throttles, errors, and object permissions.

Every view builds its queryset from the model's one permission filter,
`restrict(user, "view")`, so objects a user may not see answer 404. Writes
need the object in `restrict(user, "change")` as well (403 otherwise: it is
visible, just not theirs to change). Services raise Django's
`ValidationError` and `PermissionDenied`; they become 400 and 403 here.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, viewsets
from rest_framework.views import exception_handler as drf_exception_handler

from panel.core.permissions import CHANGE, VIEW


def exception_handler(exc: Exception, context: dict[str, Any]):
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


class RestrictedViewSetMixin:
    """get_queryset() through `restrict`; writes on an object need the "change" filter too."""

    queryset = None
    # custom @actions that change their object list themselves here
    change_actions: frozenset[str] = frozenset()

    def get_queryset(self):
        return self.queryset.all().restrict(self.request.user, VIEW)

    def get_object(self):
        obj = super().get_object()
        writes = {"update", "partial_update", "destroy", *self.change_actions}
        if self.action in writes and not self.queryset.all().can(self.request.user, CHANGE, obj):
            raise exceptions.PermissionDenied("You may view this object but not change it.")
        return obj


class RestrictedModelViewSet(RestrictedViewSetMixin, viewsets.ModelViewSet):
    pass


class RestrictedReadOnlyViewSet(RestrictedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
