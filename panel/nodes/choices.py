from django.db import models


class NodeState(models.TextChoices):
    NEW = "new", "New (never heard from)"
    UP = "up", "Up"
    DOWN = "down", "Down"
    DISABLED = "disabled", "Disabled by admin"
