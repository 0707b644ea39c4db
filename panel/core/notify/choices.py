from django.db import models


class NoticeLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    DANGER = "danger", "Needs action"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
