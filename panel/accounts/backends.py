from django.contrib.auth.backends import ModelBackend

from panel.accounts import services
from panel.accounts.choices import AuthEventKind


class PanelBackend(ModelBackend):
    """Username and password, refused for admins outside CTPANEL_ADMIN_ALLOWED_IPS."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not services.ip_allowed(user, services.client_ip(request)):
            services.record_event(AuthEventKind.LOGIN_REFUSED_IP, user=user, request=request)
            return None
        return user
