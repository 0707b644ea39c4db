from django import forms

from panel.core.forms import UserFormMixin


class WebhookForm(UserFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.URLField(max_length=500, label="URL", assume_scheme="https",
                         help_text="We POST signed JSON here (X-Ctpanel-Signature)")
    events = forms.CharField(required=False, help_text='Comma-separated names or patterns, e.g. "vps.*, '
                             'traffic.80_percent"; empty: every event')
    active = forms.BooleanField(required=False, initial=True)

    def clean_events(self) -> list[str]:
        return [e.strip() for e in self.cleaned_data["events"].split(",") if e.strip()]
