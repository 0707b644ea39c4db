from django import forms

from panel.core.forms import UserFormMixin
from panel.nodes.models import IPPool


class IPPoolForm(UserFormMixin, forms.ModelForm):
    class Meta:
        model = IPPool
        fields = ["name", "family", "network", "gateway", "unit_prefix", "node", "group", "active", "description"]
        help_texts = {"node": "Serve one node, or", "group": "all nodes of one group"}
