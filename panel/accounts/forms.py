from django import forms

from panel.accounts.choices import Role, TokenScope
from panel.accounts.models import User
from panel.core.forms import UserFormMixin


class OTPTokenForm(forms.Form):
    token = forms.RegexField(regex=r"^\d{6,8}$", label="Code from your authenticator app",
                             widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    expires_days = forms.IntegerField(min_value=1, max_value=3650, required=False,
                                      label="Expires after (days)", help_text="Empty: never")


class ProfileForm(UserFormMixin, forms.Form):
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(required=False, label="E-mail", help_text="Notices and password resets go here")


class UserForm(UserFormMixin, forms.Form):
    """A new user (password optional: without one, the user sets it through the reset e-mail)."""

    username = forms.RegexField(regex=r"^[\w.@+-]{1,150}$", label="User name",
                                help_text="Letters, digits and @ . + - _")
    email = forms.EmailField(required=False, label="E-mail")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(required=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text="At least 10 characters. Empty: the user sets one by password reset.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.CUSTOMER)
    owner = forms.ModelChoiceField(queryset=User.objects.filter(role=Role.RESELLER), required=False,
                                   label="Reseller", help_text="Customers only; empty: the admins' own customer")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.user.is_admin:  # a reseller creates its own customers
            del self.fields["role"], self.fields["owner"]


class UserEditForm(UserForm):
    """Names, e-mail, a new password; role and owner for admins."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["username"]
        self.fields["password"].label = "New password"
        self.fields["password"].help_text = "Empty: unchanged"
