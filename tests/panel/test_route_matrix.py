"""Every route of the panel is in a permission matrix, or exempt below with the reason.

The routes come from walking the URL resolver: the UI's views and every DRF
router's routes (list, detail and each extra action, with each HTTP method
its viewset maps). The matrices' URLs come
from what the matrix tests request (their worlds, constants and URL builders);
each is resolved to its route. A new view or API action fails here until a
matrix checks it for 3 roles x 2 tenants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.panel import test_pages, test_vps_data_pages, test_vps_pages
from tests.panel.api import test_permissions
from tests.panel.api.world import build_world
from tests.panel.tenants import make_tenants
from tests.panel.usage import test_api as usage_api
from tests.panel.vps import test_api as vps_api
from tests.panel.vps import test_data_api, test_quota_api

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
T = TypeVar("T")

# Route names (or "namespace:" for a whole namespace) no tenant matrix covers, and why.
EXEMPT = {
    "admin:": "Django's admin site: is_staff only, which no panel role gets (tests/panel/test_views.py)",
    "login": "anonymous by design (tests/panel/test_views.py, accounts/test_login.py)",
    "logout": "ends the caller's own session; no object",
    "password_reset": "anonymous by design: the e-mail flow (accounts/test_login.py)",
    "password_reset_done": "anonymous by design: a static page",
    "password_reset_confirm": "anonymous by design: the link's token names the user (accounts/test_login.py)",
    "password_reset_complete": "anonymous by design: a static page",
    "otp-verify": "the caller's own unconfirmed TOTP device only; no object id (accounts/test_login.py)",
    "otp-remove": "the caller's own TOTP devices only; no object id (accounts/test_login.py)",
    "api-schema": "the OpenAPI document: no objects (api/test_paths.py)",
    "api-docs": "the Swagger page: no objects (api/test_paths.py)",
    "vps:console-ws": "a WebSocket route; over HTTP it only says so. Tenants: vps/test_console_socket.py",
    **{f"{api}-api:api-root": "DRF's index of the router's endpoints: no objects"
       for api in ("core", "accounts", "nodes", "plans", "vps", "usage")},
}


def walk(patterns: list, namespace: str = "") -> Iterator[tuple[str, URLPattern, str]]:
    """(view name, pattern, route) of every URL pattern, a router's format-suffix variants left out."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            for name, leaf, route in walk(pattern.url_patterns, inner):
                yield name, leaf, f"{pattern.pattern}{route}"
        elif isinstance(pattern, URLPattern) and "format" not in pattern.pattern.regex.groupindex:
            yield f"{namespace}{pattern.name}", pattern, str(pattern.pattern)


def routes() -> dict[str, str]:
    return {name: route for name, _pattern, route in walk(get_resolver().url_patterns)}


def api_methods() -> dict[str, set[str]]:
    """Each DRF router route's HTTP methods (its viewset's method -> action map; DRF adds HEAD, a GET
    without the body, to that map at the route's first request)."""
    return {name: set(pattern.callback.actions) - {"head"} for name, pattern, _route
            in walk(get_resolver().url_patterns) if getattr(pattern.callback, "actions", None)}


def exempt(name: str) -> bool:
    return name in EXEMPT or any(key.endswith(":") and name.startswith(key) for key in EXEMPT)


def built(build: Callable[[], T]) -> T:
    """What a matrix's world builder makes, rolled back afterwards (each makes its own node "n1")."""
    with transaction.atomic():
        made = build()
        transaction.set_rollback(True)
    return made


def api_matrix_calls() -> list[tuple[str, str]]:
    """(method, URL) of every request the API matrices make (any ids: only the routes count)."""
    world = built(build_world)
    calls = [("get", f"/api/{o.endpoint}/") for o in world.objects]
    calls += [(method, o.url) for o in world.objects for method in ("get", "patch", "put", "delete")]
    calls += [("post", f"{o.url}{action}") for o in world.objects
              for action in test_permissions.OBJECT_ACTIONS.get(o.endpoint, ())]
    calls += [("post", f"/api/{endpoint}/") for endpoint in test_permissions.creates(world, "reseller2")]
    vps = "/api/vps/vps/1/"
    calls += [("get", "/api/vps/vps/"), ("get", vps), ("delete", vps)]
    calls += [("post", f"{vps}{name}/") for name in vps_api.ACTIONS]
    calls += [("get", f"{vps}{path}") for path in test_data_api.LISTS]
    calls += [(method, path) for method, path, _body in test_data_api.data_calls(vps)]
    entries, one = (f"{vps}{path}" for path in test_quota_api.MATRIX_PATHS)
    calls += [("get", entries), ("post", entries), ("delete", one)]
    calls += [("get", path.format(ctid=1, id=1)) for path in usage_api.MATRIX_PATHS]
    return calls


def ui_matrix_calls() -> list[tuple[str, str]]:
    calls = [("get", url) for url in test_pages.PAGES]
    calls += [(page.method, page.url) for page, _statuses in built(lambda: test_pages.build_pages(make_tenants()))]
    vps, fill = "/vps/1/", {"op": "00000000-0000-0000-0000-000000000001", "address": 1}
    calls += [("get", f"{vps}{path.format(**fill)}") for path in test_vps_pages.VPS_GETS]
    calls += [("post", f"{vps}{path.format(**fill)}") for path in test_vps_pages.VPS_POSTS]
    calls += [("get", f"{vps}{page}") for page in test_vps_data_pages.PAGES]
    calls += [("post", url) for url in test_vps_data_pages.data_posts(1)]
    return calls


def covered() -> dict[str, set[str]]:
    """View name -> the methods the matrices request it with."""
    found: dict[str, set[str]] = {}
    for method, url in api_matrix_calls() + ui_matrix_calls():
        found.setdefault(resolve(url.split("?")[0]).view_name, set()).add(method)
    return found


def test_every_route_is_in_a_matrix_or_exempt_with_a_reason():
    everything, matrix = routes(), covered()
    assert len(everything) > 100 and any(name.startswith("vps-api:") for name in everything)
    missing = sorted(f"{name} ({route})" for name, route in everything.items()
                     if name not in matrix and not exempt(name))
    assert not missing, "routes in no matrix (add them to one, or to EXEMPT with the reason):\n" + "\n".join(missing)


def test_every_api_method_is_in_a_matrix():
    """A viewset route's every method too: e.g. POST on a list (a create), DELETE on an action."""
    matrix = covered()
    missing = sorted(f"{method.upper()} {name}" for name, methods in api_methods().items() if not exempt(name)
                     for method in methods - matrix.get(name, set()))
    assert not missing, "API methods in no matrix:\n" + "\n".join(missing)


def test_exemptions_are_real_routes_and_not_covered():
    everything, matrix = routes(), covered()
    stale = [key for key in EXEMPT if not any(name == key or (key.endswith(":") and name.startswith(key))
                                              for name in everything)]
    assert stale == []
    assert sorted(name for name in matrix if exempt(name)) == []
