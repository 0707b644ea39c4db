"""API authentication: `Authorization: Bearer <key>` with a panel API token, and its scope."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from panel.accounts import services
from panel.accounts.choices import TokenScope
from panel.accounts.models import ApiToken


class ApiTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Use: Authorization: Bearer <token>")
        try:
            token = services.authenticate_token(parts[1].decode("ascii", "replace"), request)
        except services.TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenScopePermission(permissions.BasePermission):
    """A read-only token may only read."""

    message = "This API token is read-only."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == TokenScope.READ:
            return request.method in permissions.SAFE_METHODS
        return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "panel.accounts.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A panel API token (Account → API tokens)."}
