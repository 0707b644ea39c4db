"""VPS forms: create (plan, template, host name; the customer for staff, the node for admins) and host name."""

from __future__ import annotations

from typing import Any

from django import forms

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.forms import UserFormMixin
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans.models import Plan
from panel.vps.validators import validate_hostname

# The OS templates a VPS can be created from. The node builds busybox itself;
# other templates come with the template catalog (not built yet).
TEMPLATES = [("busybox", "BusyBox (minimal Linux, built on the node)")]


class PlanChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, plan: Plan) -> str:
        return plan.name + (f" — {plan.description}" if plan.description else "")


class VPSCreateForm(UserFormMixin, forms.Form):
    """Customers create for themselves; resellers for their customers; admins for anyone, on a node they pick."""

    customer = forms.ModelChoiceField(queryset=User.objects.filter(role=Role.CUSTOMER, is_active=True),
                                      help_text="Who the VPS belongs to")
    plan = PlanChoiceField(queryset=Plan.objects.filter(active=True).select_related("owner"),
                           help_text="Its resources come out of the customer's budget")
    template = forms.ChoiceField(label="Operating system", choices=TEMPLATES, initial=TEMPLATES[0][0],
                                 widget=forms.RadioSelect)
    hostname = forms.CharField(label="Host name", max_length=253, validators=[validate_hostname],
                               help_text="e.g. web1 or web1.example.com")
    node = forms.ModelChoiceField(queryset=Node.objects.exclude(state=NodeState.DISABLED),
                                  help_text="Where the VPS runs")
    start = forms.BooleanField(label="Start it when created", required=False, initial=True)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["hostname"].widget.attrs.update(autocomplete="off", spellcheck="false")
        if self.user.is_customer:
            del self.fields["customer"]
        if not self.user.is_admin:
            del self.fields["node"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.user.is_customer:
            data["customer"] = self.user
        return data


class HostnameForm(UserFormMixin, forms.Form):
    hostname = forms.CharField(label="Host name", max_length=253, validators=[validate_hostname],
                               help_text="e.g. web1 or web1.example.com")


class RootPasswordForm(UserFormMixin, forms.Form):
    """A new root password, typed twice; only its hash goes to the node and nothing is stored."""

    password = forms.CharField(label="New root password", strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text="8 to 128 characters")
    again = forms.CharField(label="The same password again", strip=False,
                            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password") and data.get("again") is not None and data["password"] != data["again"]:
            self.add_error("again", "The two passwords differ.")
        return data


class SSHKeysForm(UserFormMixin, forms.Form):
    ssh_keys = forms.CharField(label="SSH keys for root", required=False,
                               widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "wrap": "off"}),
                               help_text="OpenSSH public keys, one per line (ssh-ed25519 AAAA… you@laptop); "
                                         "empty removes them all")

    def clean_ssh_keys(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["ssh_keys"].splitlines() if line.strip()]


class PtrForm(UserFormMixin, forms.Form):
    ptr = forms.CharField(label="Reverse DNS", max_length=253, required=False,
                          help_text="e.g. web1.example.com; empty removes it")


class SuspendForm(UserFormMixin, forms.Form):
    reason = forms.CharField(label="Reason shown to the customer", max_length=200, required=False,
                             help_text="e.g. unpaid invoice 2026-11")


class ChangePlanForm(UserFormMixin, forms.Form):
    """Another plan for a running VPS (resized live; the budget must have room for the new plan)."""

    plan = PlanChoiceField(queryset=Plan.objects.filter(active=True).select_related("owner"), label="New plan",
                           help_text="Plans the VPS's customer may use; its budget must have room for it")


def template_choices(node: Node) -> list[tuple[str, str]]:
    """The OS templates the node says it has (TEMPLATES' labels where known); TEMPLATES while it says none."""
    labels = dict(TEMPLATES)
    reported = (node.facts or {}).get("templates")
    names = [name for name in reported if isinstance(name, str)] if isinstance(reported, list) else list(labels)
    return [(name, labels.get(name, name)) for name in names]


class ReinstallForm(UserFormMixin, forms.Form):
    """A new root filesystem: the template, root's new password and/or SSH keys, and the host name typed to confirm."""

    template = forms.ChoiceField(label="Operating system", widget=forms.RadioSelect)
    password = forms.CharField(label="New root password", strip=False, required=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                               help_text="8 to 128 characters; or leave it empty and give an SSH key")
    again = forms.CharField(label="The same password again", strip=False, required=False,
                            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    ssh_keys = forms.CharField(label="SSH keys for root", required=False,
                               widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "wrap": "off"}),
                               help_text="OpenSSH public keys, one per line")
    confirm = forms.CharField(label="Type the host name to confirm", max_length=253,
                              widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
                              help_text="Everything on the VPS's disk is erased, and its snapshots with it")

    def __init__(self, *args: Any, vps: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vps = vps
        self.fields["template"].choices = template_choices(vps.node)
        self.fields["template"].initial = vps.template

    clean_ssh_keys = SSHKeysForm.clean_ssh_keys

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("again"):
            self.add_error("again", "The two passwords differ.")
        if "confirm" in data and data["confirm"].strip() != self.vps.hostname:
            self.add_error("confirm", f"Type {self.vps.hostname} to confirm.")
        return data


class SnapshotForm(UserFormMixin, forms.Form):
    name = forms.CharField(label="Snapshot name", max_length=64, required=False,
                           widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                                         "placeholder": "e.g. before-upgrade"}),
                           help_text="Empty: snap- and the time")
