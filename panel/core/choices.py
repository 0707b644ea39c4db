from django.db import models

from worker import protocol


class OperationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DISPATCHED = "dispatched", "Sent to node"
    RUNNING = protocol.Status.RUNNING, "Running"
    SUCCEEDED = protocol.Status.SUCCEEDED, "Succeeded"
    FAILED = protocol.Status.FAILED, "Failed"

    @classmethod
    def terminal(cls) -> frozenset[str]:
        return frozenset({cls.SUCCEEDED, cls.FAILED})
