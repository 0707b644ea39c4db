"""The browser pages' permissions: 3 roles x 2 tenants; another tenant's objects answer 404.

Pages a role may not open answer 403; objects the user may view but not
change answer 403 on their edit/delete pages (the API's rule).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from panel.accounts import services as accounts
from panel.core.audit.models import ObjectChange
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.nodes import ippools
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from tests.panel.tenants import Tenants, client_for, make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

VIEWERS = ["admin", "reseller1", "reseller2", "customer1", "customer2", "customer0"]

# Pages without an object: who may open them (others get 403).
PAGES = {
    "/": "all",
    "/account/": "all",
    "/account/password/": "all",
    "/account/2fa/": "all",
    "/account/tokens/": "all",
    "/notices/": "all",
    "/plans/": "all",
    "/budget/": "all",
    "/operations/": "all",
    "/vps/": "all",
    "/vps/add/": "all",
    "/dashboard/vpss/": "all",
    "/users/": "staff",
    "/users/add/": "staff",
    "/plans/add/": "staff",
    "/budgets/": "staff",
    "/audit/": "staff",
    "/webhooks/": "staff",
    "/webhooks/add/": "staff",
    "/usage/": "staff",
    "/nodes/": "admin",
    "/ip-pools/": "admin",
    "/ip-pools/add/": "admin",
    "/templates/": "admin",
}


def may_open(viewer, who: str) -> bool:
    return who == "all" or viewer.is_admin or (who == "staff" and viewer.is_reseller)


@pytest.fixture
def t() -> Tenants:
    return make_tenants()


@pytest.mark.parametrize("viewer_name", VIEWERS)
def test_pages_open_only_for_their_roles(t, viewer_name):
    viewer = getattr(t, viewer_name)
    client = client_for(viewer)
    wrong = {}
    for url, who in PAGES.items():
        status = client.get(url, follow=True).status_code  # an admin's /budget/ leads to /budgets/
        if status != (200 if may_open(viewer, who) else 403):
            wrong[url] = status
    assert wrong == {}


def test_pages_need_a_login(client):
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


@dataclass
class Page:
    url: str
    method: str = "get"


def build_pages(t: Tenants) -> list[tuple[Page, dict[str, int]]]:
    """(page, expected status per viewer name) for one object of each kind per tenant."""
    node = Node.objects.create(name="n1")
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/24", node=node)
    global_plan = plans.create_plan(t.admin, name="global-small", ram=2**30)
    rows: list[tuple[Page, dict[str, int]]] = []

    def expect(url: str, statuses: dict[str, int], method: str = "get") -> None:
        rows.append((Page(url, method), statuses))

    def staff_tenant(owner_reseller, ok: int = 200) -> dict[str, int]:
        """An object of `owner_reseller`'s tenant on a staff page: the other reseller 404, customers 403."""
        result = {}
        for name in VIEWERS:
            viewer = getattr(t, name)
            if viewer.is_admin:
                result[name] = ok
            elif viewer.is_reseller:
                result[name] = ok if viewer == owner_reseller else 404
            else:
                result[name] = 403
        return result

    for reseller, customer in ((t.reseller1, t.customer1), (t.reseller2, t.customer2)):
        budgets.grant(t.admin, reseller, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None,
                      ipv6_prefixes=None, traffic=None)
        budgets.grant(reseller, customer, vps_count=2)
        plan = plans.create_plan(reseller, name=f"{reseller.username}-plan", ram=2**30)
        hook = notify.create_webhook(reseller, name=f"{reseller.username}-hook", url="https://hooks.example.com/x")
        for url in (f"/users/{customer.pk}/", f"/users/{customer.pk}/edit/", f"/users/{customer.pk}/budget/",
                    f"/webhooks/{hook.pk}/", f"/webhooks/{hook.pk}/delete/"):
            expect(url, staff_tenant(reseller))
        for url in (f"/users/{customer.pk}/suspend/", f"/users/{customer.pk}/unsuspend/"):
            expect(url, staff_tenant(reseller, ok=302), method="post")
        # Plans: every role views (customers: their reseller's); only the owner and admins change.
        statuses = {}
        for name in VIEWERS:
            viewer = getattr(t, name)
            mine = viewer.is_admin or viewer == reseller or viewer.owner_id == reseller.pk
            statuses[name] = 200 if mine else 404
        expect(f"/plans/{plan.pk}/", statuses)
        expect(f"/plans/{plan.pk}/edit/", staff_tenant(reseller))
        expect(f"/plans/{plan.pk}/delete/", staff_tenant(reseller))
        # A customer's own notice and operation.
        notice = notify.notify(customer, "test.event", "hello", email=False)
        # Admins may view everybody's notices (403: viewable, not theirs to change); others see only their own.
        expect(f"/notices/{notice.pk}/read/",
               {n: 302 if getattr(t, n) == customer else 403 if getattr(t, n).is_admin else 404 for n in VIEWERS},
               method="post")
        token, _ = accounts.create_token(customer, name="cli")  # personal: only its user revokes it
        expect(f"/account/tokens/{token.pk}/revoke/", {n: 302 if getattr(t, n) == customer else 404 for n in VIEWERS},
               method="post")
        operation = Operation.objects.create(action="node.ping", node_name="n1", user=customer)
        expect(f"/operations/{operation.pk}/",
               {n: 200 if getattr(t, n) in (customer, reseller) or getattr(t, n).is_admin else 404
                for n in VIEWERS})
    # The customers' audit rows: the reseller sees its customers', customers have no audit page.
    for reseller, customer in ((t.reseller1, t.customer1), (t.reseller2, t.customer2)):
        change = ObjectChange.objects.filter(object_id=str(customer.pk), content_type__model="user").first()
        expect(f"/audit/{change.pk}/", staff_tenant(reseller))
    # Global objects: the admin's.
    expect(f"/plans/{global_plan.pk}/", dict.fromkeys(VIEWERS, 200))
    expect(f"/plans/{global_plan.pk}/edit/", {n: 200 if getattr(t, n).is_admin else 403 for n in VIEWERS})
    admin_only = {n: 200 if getattr(t, n).is_admin else 403 for n in VIEWERS}
    for url in (f"/nodes/{node.name}/", f"/ip-pools/{pool.pk}/", f"/ip-pools/{pool.pk}/edit/"):
        expect(url, admin_only)
    expect(f"/nodes/{node.name}/ping/", {n: 302 if getattr(t, n).is_admin else 403 for n in VIEWERS}, method="post")
    expect("/notices/read/", dict.fromkeys(VIEWERS, 302), method="post")  # the viewer's own notices
    return rows


@pytest.mark.parametrize("viewer_name", VIEWERS)
def test_objects_answer_by_tenant(t, viewer_name):
    rows = build_pages(t)
    client = client_for(getattr(t, viewer_name))
    wrong = []
    for page, statuses in rows:
        status = getattr(client, page.method)(page.url).status_code
        if status != statuses[viewer_name]:
            wrong.append(f"{page.method.upper()} {page.url}: {status}, expected {statuses[viewer_name]}")
    assert wrong == []


def test_other_tenants_names_are_not_offered_in_filters(t):
    client = client_for(t.reseller1)
    page = client.get("/audit/").content.decode()
    assert "customer1" in page
    assert "customer2" not in page and "reseller2" not in page
    page = client.get("/users/").content.decode()
    assert "customer1b" in page and "customer2" not in page


def test_the_templates_page_lists_each_template_with_its_nodes(t):
    from panel.nodes.models import Node

    Node.objects.create(name="tpl-a", facts={"templates": ["busybox", "debian-12"]})
    Node.objects.create(name="tpl-b", facts={"templates": ["busybox"]})
    Node.objects.create(name="tpl-c", facts={"templates": "garbage"})
    page = client_for(t.admin).get("/templates/").content.decode()
    rows = {row.split("</code>")[0].rsplit(">", 1)[-1]: row for row in page.split("<tr>")[2:]}
    assert set(rows) == {"busybox", "debian-12"}
    on, missing = rows["debian-12"].split("</td>")[1:3]
    assert "tpl-a" in on and "tpl-b" not in on and "tpl-b" in missing and "tpl-c" in missing
