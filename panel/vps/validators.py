import re

from django.core.exceptions import ValidationError

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def validate_hostname(value: str) -> None:
    """RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens."""
    if not value or len(value) > 253 or not all(_LABEL.match(label) for label in value.rstrip(".").split(".")):
        raise ValidationError(
            "Enter a host name like web1 or web1.example.com: letters, digits and hyphens, "
            "labels of at most 63 characters separated by dots.", code="hostname",
        )


def validate_template_name(value: str) -> None:
    if not _TEMPLATE.match(value or ""):
        raise ValidationError("Template names are lower-case letters, digits, '.', '_' and '-'.", code="template")
