"""Pagination and throttles named in REST_FRAMEWORK (kept apart from views: DRF imports them while defining APIView)."""

from rest_framework import pagination, throttling
from rest_framework.settings import api_settings


class Pagination(pagination.LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000


class _SettingsRate:
    """Read the rate when used, not at import, so settings overrides apply."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_SettingsRate, throttling.AnonRateThrottle):
    pass


class UserThrottle(_SettingsRate, throttling.UserRateThrottle):
    pass
