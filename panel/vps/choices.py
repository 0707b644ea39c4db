from django.db import models

from worker import protocol


class VpsState(models.TextChoices):
    """The last state the panel knows of; `unknown` is shown, not stored, while the node is down."""

    CREATING = "creating", "Being created"
    STOPPED = protocol.VpsState.STOPPED, "Stopped"
    RUNNING = protocol.VpsState.RUNNING, "Running"
    PAUSED = protocol.VpsState.PAUSED, "Paused"
    ERROR = "error", "Error"
    DESTROYED = "destroyed", "Destroyed"


class DesiredState(models.TextChoices):
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"
    ABSENT = "absent", "Destroyed"
