from django.db import models


class NodeState(models.TextChoices):
    NEW = "new", "New (never heard from)"
    UP = "up", "Up"
    DOWN = "down", "Down"
    DISABLED = "disabled", "Disabled by admin"


class IPFamily(models.IntegerChoices):
    IPV4 = 4, "IPv4"
    IPV6 = 6, "IPv6"
