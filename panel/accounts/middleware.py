from django.contrib.auth import logout
from django.http import HttpResponseForbidden, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from panel.accounts import services

# Reachable while signed in but not yet past 2FA.
TWO_FACTOR_EXEMPT = ("/logout/", "/account/2fa/", "/static/", "/password-reset/", "/reset/")


class AdminAllowListMiddleware:
    """An admin session used from an address outside CTPANEL_ADMIN_ALLOWED_IPS is ended."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not services.ip_allowed(user, services.client_ip(request)):
            logout(request)
            return HttpResponseForbidden("Administrators may not sign in from this address.")
        return self.get_response(request)


class TwoFactorMiddleware:
    """A session that still owes its second factor reaches only the 2FA pages (and logout).

    API requests with a token carry no session and pass; a session on /api/
    that owes 2FA gets a 403 instead of a redirect.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if (user.is_authenticated and not user.is_verified() and not request.path.startswith(TWO_FACTOR_EXEMPT)
                and services.two_factor_required(user)):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "Two-factor verification required."}, status=403)
            enrolled = user.totpdevice_set.filter(confirmed=True).exists()
            target = reverse("otp-verify" if enrolled else "otp-setup")
            return redirect(f"{target}?next={request.get_full_path()}")
        return self.get_response(request)
