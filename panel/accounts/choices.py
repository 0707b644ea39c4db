from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    RESELLER = "reseller", "Reseller"
    CUSTOMER = "customer", "Customer"
