from django import forms

from panel.accounts.choices import TokenScope


class OTPTokenForm(forms.Form):
    token = forms.RegexField(regex=r"^\d{6,8}$", label="Code from your authenticator app",
                             widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    expires_days = forms.IntegerField(min_value=1, max_value=3650, required=False,
                                      label="Expires after (days)", help_text="Empty: never")
