from django import forms

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.forms import ByteSizeField, RateField, UserFormMixin
from panel.plans.models import Plan
from panel.plans.services import EDITABLE

BYTE_FIELDS = ("ram", "swap", "diskspace", "iolimit", "traffic")
RATE_FIELDS = ("port_speed", "throttle_rate")


class PlanForm(UserFormMixin, forms.ModelForm):
    """A plan's limits with units ("2 GiB", "100 Mbit/s"); admins also pick the owner."""

    ram = ByteSizeField(label="RAM")
    swap = ByteSizeField(label="Swap", help_text="On top of RAM; 0 = none")
    diskspace = ByteSizeField(label="Disk space")
    iolimit = ByteSizeField(label="Disk bandwidth per second", help_text="0 = unlimited")
    traffic = ByteSizeField(label="Monthly traffic", help_text="0 = unlimited; GB = 10^9 bytes")
    port_speed = RateField(label="Port speed", help_text="Each way; 0 = unlimited")
    throttle_rate = RateField(label="Speed over quota", help_text="When throttled; 0 = unlimited")

    class Meta:
        model = Plan
        fields = ["name", "description", "owner", *[f for f in EDITABLE if f not in ("name", "description")]]
        labels = {"diskinodes": "Inodes", "quotaugidlimit": "Second-level quota ids", "cpus": "CPUs",
                  "cpulimit": "CPU limit (%)", "cpuunits": "CPU weight", "numproc": "Processes",
                  "numfile": "Open files", "iopslimit": "Disk operations per second", "ipv4_count": "IPv4 addresses",
                  "ipv6_mode": "IPv6 as", "ipv6_count": "IPv6 count", "active": "Offered for new VPSs"}
        help_texts = {"active": "", "numproc": "Processes and threads; 0 = unlimited",
                      "numfile": "Per process; 0 = unlimited", "diskinodes": "0 = unlimited",
                      "iopslimit": "0 = unlimited", "cpulimit": "Percent of one CPU; 0 = up to the CPUs"}

    fieldsets = [
        ("Plan", ["name", "description", "owner", "active"]),
        ("Memory and CPU", ["ram", "swap", "cpus", "cpulimit", "cpuunits", "numproc", "numfile"]),
        ("Disk", ["diskspace", "diskinodes", "quotaugidlimit", "iolimit", "iopslimit", "backup_slots"]),
        ("Network", ["port_speed", "traffic", "traffic_reset_day", "over_quota_action", "throttle_rate", "ipv4_count",
                     "ipv6_mode", "ipv6_count"]),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.user.is_admin:
            self.fields["owner"].queryset = User.objects.filter(role=Role.RESELLER)
            self.fields["owner"].label = "Reseller"
            self.fields["owner"].help_text = "Empty: a global plan every customer may see"
        else:
            del self.fields["owner"]
            if self.instance.pk is None:
                self.instance.owner = self.user
        for name in (*BYTE_FIELDS, *RATE_FIELDS):
            self.fields[name].required = True
            self.fields[name].initial = getattr(self.instance, name)  # the model's default on a new plan


def _count(label: str) -> forms.IntegerField:
    return forms.IntegerField(label=label, min_value=0, required=False, help_text="Empty: unlimited")


def _size(label: str) -> ByteSizeField:
    return ByteSizeField(label=label, required=False, help_text="e.g. 16 GiB; empty: unlimited")


class BudgetForm(UserFormMixin, forms.Form):
    """What a reseller or customer may allocate; empty = unlimited, 0 = nothing."""

    vps_count = _count("VPSs")
    ram = _size("RAM")
    disk = _size("Disk space")
    cpus = _count("CPUs")
    ipv4 = _count("IPv4 addresses")
    ipv6_prefixes = _count("IPv6 /64 prefixes")
    traffic = _size("Monthly traffic")
