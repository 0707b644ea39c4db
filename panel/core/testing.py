"""Hooks for the test settings only (panel.settings.test turns them on).

Transactional tests flush the database between tests, and Django recreates
the content types with new ids; the worker and web processes the tests
start outlive many tests and would keep stale ids in their content type
cache. These hooks forget that cache before every task and request.
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType


def forget_content_types(**kwargs: Any) -> None:
    ContentType.objects.clear_cache()


class ForgetContentTypesMiddleware:
    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        forget_content_types()
        return self.get_response(request)
