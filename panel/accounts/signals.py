"""Login, logout and failed logins become AuthEvents."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from panel.accounts import services
from panel.accounts.choices import AuthEventKind
from panel.accounts.models import User


@receiver(user_logged_in, dispatch_uid="accounts-login-event")
def on_login(sender, request, user, **kwargs) -> None:
    services.record_event(AuthEventKind.LOGIN, user=user, request=request)


@receiver(user_logged_out, dispatch_uid="accounts-logout-event")
def on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        services.record_event(AuthEventKind.LOGOUT, user=user, request=request)


@receiver(user_login_failed, dispatch_uid="accounts-login-failed-event")
def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))[:150]
    services.record_event(AuthEventKind.LOGIN_FAILED, user=User.objects.filter(username=username).first(),
                          username=username, request=request)
