import datetime

import segno
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from panel.accounts import services
from panel.accounts.choices import AuthEventKind
from panel.accounts.forms import ApiTokenForm, OTPTokenForm
from panel.accounts.models import ApiToken
from panel.core.permissions import CHANGE


@login_required
def home(request):
    return render(request, "accounts/home.html")


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "/"


@login_required
def otp_setup(request):
    """Enrol a TOTP authenticator: scan the QR code, confirm with one code."""
    confirmed = TOTPDevice.objects.filter(user=request.user, confirmed=True).first()
    if confirmed is not None:
        return render(request, "accounts/otp_setup.html", {
            "device": confirmed, "enrolled": True, "form": OTPTokenForm(),
            "mandatory": services.two_factor_mandatory(request.user)})
    device, _ = TOTPDevice.objects.get_or_create(user=request.user, confirmed=False, defaults={"name": "authenticator"})
    form = OTPTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save()
            otp_login(request, device)
            services.record_event(AuthEventKind.OTP_ENROLLED, user=request.user, request=request)
            messages.success(request, "Two-factor authentication is on.")
            return redirect(_next_url(request))
        services.record_event(AuthEventKind.OTP_FAILED, user=request.user, request=request)
        form.add_error("token", "That code did not match. Check your device's clock and try again.")
    qr_svg = segno.make(device.config_url, error="m").svg_inline(scale=4)
    secret = device.config_url.split("secret=")[1].split("&")[0]
    return render(request, "accounts/otp_setup.html", {"form": form, "qr_svg": qr_svg, "secret": secret,
                                                        "next": _next_url(request)})


@login_required
@require_POST
def otp_remove(request):
    if services.two_factor_mandatory(request.user):
        messages.error(request, "Two-factor authentication is required for your role.")
        return redirect("otp-setup")
    form = OTPTokenForm(request.POST)
    if form.is_valid() and match_token(request.user, form.cleaned_data["token"]) is not None:
        TOTPDevice.objects.filter(user=request.user).delete()
        services.record_event(AuthEventKind.OTP_REMOVED, user=request.user, request=request)
        messages.success(request, "Two-factor authentication is off.")
    else:
        services.record_event(AuthEventKind.OTP_FAILED, user=request.user, request=request)
        messages.error(request, "That code did not match; two-factor authentication stays on.")
    return redirect("otp-setup")


@login_required
def otp_verify(request):
    form = OTPTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = match_token(request.user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            services.record_event(AuthEventKind.OTP_VERIFIED, user=request.user, request=request)
            return redirect(_next_url(request))
        services.record_event(AuthEventKind.OTP_FAILED, user=request.user, request=request)
        form.add_error("token", "That code did not match.")
    return render(request, "accounts/otp_verify.html", {"form": form, "next": _next_url(request)})


@login_required
def token_list(request):
    form = ApiTokenForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        days = form.cleaned_data["expires_days"]
        expires = timezone.now() + datetime.timedelta(days=days) if days else None
        _, new_key = services.create_token(request.user, name=form.cleaned_data["name"],
                                           scope=form.cleaned_data["scope"], expires=expires, request=request)
        form = ApiTokenForm()
    tokens = ApiToken.objects.restrict(request.user, CHANGE)
    return render(request, "accounts/token_list.html", {"form": form, "tokens": tokens, "new_key": new_key})


@login_required
@require_POST
def token_revoke(request, pk):
    token = get_object_or_404(ApiToken.objects.restrict(request.user, CHANGE), pk=pk)
    services.revoke_token(token, request=request)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("token-list")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"

    def form_valid(self, form):
        response = super().form_valid(form)
        services.record_event(AuthEventKind.PASSWORD_RESET, user=form.user, request=self.request)
        return response
