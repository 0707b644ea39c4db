"""Template helpers shared by every page: navigation links, units, ages, state badges."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from panel.core import formats
from panel.core.notify.models import Notice

register = template.Library()

# State words (node states, operation statuses, delivery states...) and how they look.
BADGES = {
    "up": "ok", "succeeded": "ok", "delivered": "ok", "active": "ok", "yes": "ok",
    "running": "info", "dispatched": "info", "pending": "info", "new": "muted",
    "down": "bad", "failed": "bad", "suspended": "bad",
    "disabled": "muted", "no": "muted", "revoked": "muted", "expired": "muted",
    "info": "info", "warning": "warn", "danger": "bad",
}


@register.simple_tag(takes_context=True)
def nav_link(context: Any, url_name: str, label: str, *prefixes: str) -> SafeString:
    """A navigation link, marked aria-current when the page is it (or under one of `prefixes`)."""
    try:
        url = reverse(url_name)
    except NoReverseMatch:
        return mark_safe("")
    path = context["request"].path
    current = path == url or any(path.startswith(p) for p in prefixes) or (url != "/" and path.startswith(url))
    if current:
        return format_html('<a href="{}" aria-current="page">{}</a>', url, label)
    return format_html('<a href="{}">{}</a>', url, label)


@register.simple_tag
def unread_notices(user: Any) -> int:
    return Notice.objects.filter(recipient=user, read_at__isnull=True).count() if user.is_authenticated else 0


@register.filter
def bytes_si(value: Any) -> str:
    return "—" if value is None or value == "" else formats.bytes_si(int(value))


@register.filter
def rate(value: Any) -> str:
    return "—" if value is None or value == "" else formats.bits_per_second(int(value))


@register.filter
def age(value: Any) -> str:
    return formats.age(value, timezone.now())


@register.filter
def percent_of(part: Any, whole: Any) -> int:
    """part/whole in whole percent (0 when whole is empty), for meters and bars."""
    try:
        return max(0, min(100, round(100 * float(part) / float(whole)))) if whole else 0
    except (TypeError, ValueError):
        return 0


@register.simple_tag
def badge(state: Any, label: Any = None) -> SafeString:
    key = str(state).lower()
    return format_html('<span class="badge badge-{}">{}</span>', BADGES.get(key, "muted"),
                       label if label is not None else state)
