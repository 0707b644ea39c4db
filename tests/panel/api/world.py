"""One object of every API model per tenant, with the user each object belongs to."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType

from panel.accounts import services as accounts
from panel.accounts.choices import AuthEventKind
from panel.accounts.models import User
from panel.core.audit import services as audit
from panel.core.audit.models import ObjectChange
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.nodes import ippools
from panel.nodes.models import Node, NodeGroup
from panel.plans import budgets
from panel.plans import services as plans
from tests.panel.tenants import Tenants, make_tenants


@dataclass
class Obj:
    endpoint: str  # e.g. "plans/plans"
    pk: object
    owner: User | None  # None: a global object (admins' only unless the endpoint says otherwise)
    kind: str = ""

    @property
    def url(self) -> str:
        return f"/api/{self.endpoint}/{self.pk}/"


@dataclass
class World:
    t: Tenants
    objects: list[Obj] = field(default_factory=list)

    def add(self, endpoint: str, obj, owner: User | None, kind: str = "") -> None:
        self.objects.append(Obj(endpoint, obj.pk, owner, kind))


def build_world() -> World:
    t = make_tenants()
    w = World(t)
    for user in (t.admin, t.admin2, t.reseller1, t.reseller2, t.customer1, t.customer1b, t.customer2, t.customer0):
        w.add("accounts/users", user, user)
        token, _ = accounts.create_token(user, name=f"{user.username}-token")
        w.add("accounts/tokens", token, user)
        w.add("accounts/events", accounts.record_event(AuthEventKind.LOGIN, user=user), user)
        w.add("core/notices", notify.notify(user, "test.event", f"hello {user.username}", email=False), user)
        operation = Operation.objects.create(action="node.ping", node_name="n1", user=user)
        w.add("core/operations", operation, user)
    node = Node.objects.create(name="n1")
    w.add("nodes/nodes", node, None)
    group = NodeGroup.objects.create(name="rack1")
    group.nodes.add(node)
    w.add("nodes/groups", group, None)
    pool = ippools.create_pool(name="v4", family=4, network="198.51.100.0/24", node=node)
    w.add("nodes/pools", pool, None)
    w.add("plans/plans", plans.create_plan(t.admin, name="global-small", ram=2**30), None, kind="global")
    for reseller, customers in ((t.reseller1, (t.customer1, t.customer1b)), (t.reseller2, (t.customer2,))):
        w.add("plans/plans", plans.create_plan(reseller, name=f"{reseller.username}-plan", ram=2**30), reseller)
        w.add("plans/budgets", budgets.grant(t.admin, reseller, vps_count=10, ram=None, disk=None, cpus=None,
                                             ipv4=None, ipv6_prefixes=None, traffic=None), reseller)
        hook = notify.create_webhook(reseller, name=f"{reseller.username}-hook", url="https://hooks.example.com/x")
        w.add("core/webhooks", hook, reseller)
        w.add("core/webhook-deliveries", notify.emit("test.event", {}, tenant=reseller)[-1], reseller)
        for customer in customers:
            w.add("plans/budgets", budgets.grant(reseller, customer, vps_count=2), customer)
            w.add("plans/allocations", budgets.reserve(customer, f"vps:{customer.pk}", budgets.Demand()), customer)
            w.add("nodes/addresses", ippools.allocate(pool, owner=customer), customer)
            w.add("core/journal", audit.add_note(reseller, customer, "a note"), customer, kind="journal")
    for change in ObjectChange.objects.filter(content_type=ContentType.objects.get_for_model(User)):
        w.add("core/changes", change, User.objects.get(pk=change.object_id))
    return w
