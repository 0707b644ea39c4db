from django.db import models


class OverQuotaAction(models.TextChoices):
    THROTTLE = "throttle", "Throttle to a speed"
    SUSPEND = "suspend", "Suspend the VPS"


class IPv6Mode(models.TextChoices):
    PREFIX64 = "prefix64", "/64 prefixes"
    ADDRESSES = "addresses", "Single addresses"


# What a budget limits; the same names on Budget, Allocation and Demand.
BUDGET_RESOURCES: dict[str, str] = {
    "vps_count": "VPS count",
    "ram": "RAM",
    "disk": "disk space",
    "cpus": "CPUs",
    "ipv4": "IPv4 addresses",
    "ipv6_prefixes": "IPv6 /64 prefixes",
    "traffic": "monthly traffic",
}
