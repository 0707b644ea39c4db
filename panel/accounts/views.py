import datetime

import segno
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from panel.accounts import filtersets, services
from panel.accounts.choices import AuthEventKind, Role
from panel.accounts.forms import ApiTokenForm, OTPTokenForm, ProfileForm, UserEditForm, UserForm
from panel.accounts.models import ApiToken, AuthEvent, User
from panel.accounts.tables import CustomerTable, UserTable
from panel.core import views as generic
from panel.core.permissions import CHANGE, VIEW


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


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = "/account/"

    def form_valid(self, form):
        messages.success(self.request, "Your password is changed.")
        return super().form_valid(form)


@login_required
def account(request):
    """Profile (names, e-mail) and the way to the password, 2FA and token pages."""
    form = ProfileForm(request.POST or None, user=request.user, initial={
        "first_name": request.user.first_name, "last_name": request.user.last_name, "email": request.user.email})
    if request.method == "POST" and form.is_valid():
        try:
            services.update_user(request.user, request.user, **form.cleaned_data)
        except ValidationError as exc:
            generic.add_service_error(form, exc)
        else:
            messages.success(request, "Profile saved.")
            return redirect("account")
    events = AuthEvent.objects.filter(user=request.user)[:10]
    return render(request, "accounts/account.html", {
        "form": form, "events": events, "title": "Profile and password",
        "two_factor": TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()})


STAFF = (Role.ADMIN, Role.RESELLER)


class UserListView(generic.ObjectListView):
    """Admins: every user. A reseller: its customers (this page is its "Customers")."""

    roles = STAFF
    queryset = User.objects.select_related("owner")
    filterset = filtersets.UserFilterSet
    add_url = "user-add"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_admin else queryset.exclude(pk=request.user.pk)

    def get(self, request, **kwargs):
        self.table = UserTable if request.user.is_admin else CustomerTable
        self.title = "Users" if request.user.is_admin else "Customers"
        return super().get(request, **kwargs)

    def hidden_filters(self, request):
        return () if request.user.is_admin else ("role", "owner")


class UserView(generic.ObjectView):
    roles = STAFF
    queryset = User.objects.select_related("owner")
    template_name = "accounts/user.html"

    def get_extra_context(self, request, obj=None, **kwargs):
        return {"customers": obj.customers.count() if obj.is_reseller else None,
                "events": AuthEvent.objects.restrict(request.user, VIEW).filter(user=obj)[:10],
                "is_self": obj.pk == request.user.pk}


class UserEditView(generic.ObjectEditView):
    roles = STAFF
    queryset = User.objects.all()

    def get_form_class(self, request, obj):
        return UserForm if obj is None else UserEditForm

    def get_initial(self, request, obj):
        if obj is None:
            return {}
        return {"email": obj.email, "first_name": obj.first_name, "last_name": obj.last_name,
                "role": obj.role, "owner": obj.owner}

    def save(self, request, form, obj):
        data = {k: v for k, v in form.cleaned_data.items() if v is not None}
        if obj is None:
            return services.create_user(request.user, **data)
        if not data.get("password"):
            data.pop("password", None)
        if obj.pk == request.user.pk:
            data.pop("role", None)
        if data.get("role") == obj.role:
            data.pop("role")
        if "owner" in data and data["owner"] == obj.owner:
            data.pop("owner")
        return services.update_user(request.user, obj, **data)

    def success_url(self, request, obj):
        return reverse("user", args=[obj.pk])


class UserSuspendView(generic.ObjectActionView):
    """Suspend = the account's `is_active` flag: no sign-in, no API token, sessions end."""

    roles = STAFF
    queryset = User.objects.all()
    active = False

    def perform(self, request, obj):
        services.update_user(request.user, obj, is_active=self.active)
        return f"{obj.username} {'unsuspended' if self.active else 'suspended'}."

    def post(self, request, **kwargs):
        self.success_url = reverse("user", args=[kwargs["pk"]])
        return super().post(request, **kwargs)


class UserUnsuspendView(UserSuspendView):
    active = True
