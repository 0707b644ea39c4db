from django.core.validators import RegexValidator
from django.db import models

from panel.nodes.choices import NodeState
from worker import protocol


class Node(models.Model):
    """A machine that runs VPSs; the panel reaches it through queue node.<name>."""

    name = models.CharField(
        max_length=32, unique=True,
        validators=[RegexValidator(protocol.NODE_NAME_RE, "1-32 lower-case letters, digits or '-'")],
    )
    description = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=16, choices=NodeState.choices, default=NodeState.NEW)
    last_seen = models.DateTimeField(null=True, blank=True)
    facts = models.JSONField(default=dict, blank=True, help_text="What the node last said about itself")
    capacity = models.JSONField(default=dict, blank=True, help_text="CPUs, memory and load at the last heartbeat")
    heartbeat_interval = models.PositiveIntegerField(default=protocol.HEARTBEAT_SECONDS)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return protocol.node_queue(self.name)
