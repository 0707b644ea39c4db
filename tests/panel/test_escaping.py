"""Strings that customers, resellers and nodes control are shown as text, never as markup; every form field is labelled.

Each free-text field gets a `<script>` and an `<img onerror>` payload naming it; the main pages of each role
are parsed as a browser would: an executable script or an event handler carrying a payload fails, and so does
a field whose payload is never shown as text (the test would prove nothing).
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.utils import timezone

from panel.accounts import services as accounts
from panel.core.choices import OperationStatus
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import services
from panel.vps.choices import VpsState
from panel.vps.models import VPS, next_ctid
from tests.panel.tenants import client_for, make_tenants
from tests.panel.test_vps_pages import ed25519_key

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

FIELDS = ("first-name", "plan-description", "notice-title", "notice-body", "webhook-name", "key-comment",
          "token-name", "node-error", "node-log")
INPUTS = {"input", "select", "textarea"}
UNLABELLED_TYPES = {"hidden", "submit", "button", "reset", "image"}


def payload(field: str) -> str:
    return f'<script>xss("{field}")</script><img src=x onerror=xss("{field}")>'


class Page(HTMLParser):
    """What a browser would run (scripts, event handlers), the text it would show, and the form fields."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.markup: list[str] = []
        self.fields: list[dict[str, str | None]] = []
        self.labels_for: set[str] = set()
        self.open_labels = 0
        self.script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") and "xss(" in (value or ""):
                self.markup.append(f"<{tag} {name}={value!r}>")
            elif value:
                self.text.append(value)  # an attribute value is text too (aria-label, value, title)
        if tag == "script":
            self.script = values
        elif tag == "label":
            self.open_labels += 1
            if values.get("for"):
                self.labels_for.add(values["for"])
        elif tag in INPUTS and values.get("type") not in UNLABELLED_TYPES:
            self.fields.append({**values, "tag": tag, "in_label": "yes" if self.open_labels else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.script = None
        elif tag == "label":
            self.open_labels = max(0, self.open_labels - 1)

    def handle_data(self, data: str) -> None:
        if self.script is None:
            self.text.append(data)
        elif (self.script.get("type") or "").endswith("json"):
            if "<" in data:  # json_script escapes "<": a raw one could close the element
                self.markup.append(f"raw < in a JSON script: {data[:80]!r}")
        elif "xss(" in data:
            self.markup.append(f"<script>{data[:80]}")

    def unlabelled(self) -> list[str]:
        return [f"<{f['tag']} name={f.get('name')!r} id={f.get('id')!r}>" for f in self.fields
                if not (f.get("in_label") or f.get("aria-label") or f.get("aria-labelledby") or f.get("title")
                        or (f.get("id") and f["id"] in self.labels_for))]


@pytest.fixture
def world():
    t = make_tenants()
    node = Node.objects.create(name="n1", state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 2**36, "memory_total": 2**36})
    budgets.grant(t.admin, t.reseller1, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None, ipv6_prefixes=None,
                  traffic=None)
    customer = t.customer1
    customer.first_name = payload("first-name")
    customer.save()
    plan = plans.create_plan(t.reseller1, name="small", description=payload("plan-description"), ram=2**30,
                             quotaugidlimit=10)
    vps = VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname="one.example.com",
                             template="busybox", state=VpsState.RUNNING, plan=plan,
                             limits={"ram": 2**30, "quotaugidlimit": 10})  # with the quota card and its form
    services.set_ssh_keys(customer, vps, [ed25519_key(1, payload("key-comment"))])
    notify.notify(customer, "test.event", payload("notice-title"), payload("notice-body"), email=False)
    hook = notify.create_webhook(t.reseller1, name=payload("webhook-name"), url="https://hooks.example.com/x")
    accounts.create_token(customer, name=payload("token-name"))
    operation = Operation.objects.create(action="node.vps.start", node_name="n1", target_type="vps",
                                         target_id=str(vps.ctid), user=customer, status=OperationStatus.FAILED,
                                         error_code="failed",
                                         error_message=payload("node-error"), log=[payload("node-log")])
    return t, vps, plan, hook, operation


def pages(t, vps, plan, hook, operation) -> dict[str, list[str]]:
    c, op = vps.ctid, operation.pk
    as_customer = ["/", "/vps/", "/vps/add/", f"/vps/{c}/", f"/vps/{c}/usage/", f"/vps/{c}/data/", f"/vps/{c}/quotas/",
                   f"/vps/{c}/history/", f"/vps/{c}/operations/", f"/vps/{c}/operations/{op}/", f"/vps/{c}/console/",
                   "/plans/", f"/plans/{plan.pk}/",
                   "/notices/", "/account/", "/account/password/", "/account/2fa/", "/account/tokens/",
                   "/operations/", "/budget/"]
    as_staff = ["/", "/users/", "/users/add/", f"/users/{t.customer1.pk}/", f"/users/{t.customer1.pk}/edit/",
                f"/users/{t.customer1.pk}/budget/", "/plans/", "/plans/add/", f"/plans/{plan.pk}/",
                f"/plans/{plan.pk}/edit/", "/budgets/", "/webhooks/", "/webhooks/add/", f"/webhooks/{hook.pk}/",
                "/audit/", "/vps/", f"/vps/{c}/", f"/vps/{c}/history/", "/operations/", f"/operations/{op}/", "/usage/",
                "/account/tokens/"]
    return {"customer1": as_customer, "reseller1": as_staff,
            "admin": [*as_staff, "/nodes/", "/ip-pools/", "/ip-pools/add/", "/templates/", "/budget/"]}


def test_payloads_are_text_and_every_field_has_a_label(world):
    t, vps, plan, hook, operation = world
    markup, unlabelled, shown, pages_read = [], [], set(), 0
    for viewer, urls in pages(t, vps, plan, hook, operation).items():
        client = client_for(getattr(t, viewer))
        for url in urls:
            response = client.get(url, follow=True)
            assert response.status_code == 200, (viewer, url, response.status_code)
            page = Page()
            page.feed(response.content.decode())
            page.close()
            pages_read += 1
            markup += [f"{viewer} {url}: {m}" for m in page.markup]
            unlabelled += [f"{viewer} {url}: {f}" for f in page.unlabelled()]
            text = "".join(page.text)
            shown |= {field for field in FIELDS if payload(field) in text}
    assert markup == []
    assert unlabelled == []
    assert sorted(set(FIELDS) - shown) == [], "payloads never shown: the pages above prove nothing for them"
    assert pages_read == 20 + 22 + 27


def test_the_checks_catch_markup_and_unlabelled_fields():
    """The parser itself: an unescaped payload, a handler, a raw `<` in JSON and a bare input are all caught."""
    page = Page()
    page.feed(f'<p>{payload("x")}</p><script type="application/json">{{"a": "<b>"}}</script>'
              '<label for="a">A</label><input id="a"><label>B <select name="b"></select></label>'
              '<input name="c" aria-label="C"><input type="hidden" name="d"><textarea name="e"></textarea>')
    assert page.markup == ['<script>xss("x")', "<img onerror='xss(\"x\")'>", 'raw < in a JSON script: \'{"a": "<b>"}\'']
    assert page.unlabelled() == ["<textarea name='e' id=None>"]
