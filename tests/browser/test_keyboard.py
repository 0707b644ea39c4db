"""Keyboard only, against a real node: from the top of the VPS page, Tab to the power button, Enter, it starts."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.models import Operation
from panel.nodes import services as nodes
from panel.vps import services
from tests.browser.test_login import PASSWORD, log_in
from tests.browser.test_vps_pages import OPERATION_TIMEOUT, finished, node_ready, node_runtime
from tests.services import finished as operation_finished

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MiB = 2**20
MAX_TABS = 100


def focused(page: Page) -> dict[str, object]:
    return page.evaluate("""() => {
        const el = document.activeElement;
        return {text: el.textContent.trim(), tag: el.tagName, visible: el.matches(":focus-visible"),
                inPower: !!el.closest('[role=group][aria-label=Power]')};
    }""")


def test_keyboard_only_tab_to_start_and_press_enter(page, live_panel, stack):
    admin = User.objects.create_user("kb-admin", password=PASSWORD, role=Role.ADMIN)
    kim = User.objects.create_user("kb-kim", password=PASSWORD, role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=kim, node=node, template="busybox", hostname="keys-vps",
                                  limits={"ram": 256 * MiB}, start=False)
    operation_finished(op)
    node_ready(stack.node_name)
    try:
        log_in(page, live_panel, "kb-kim")
        page.goto(f"{live_panel}/vps/{vps.ctid}/")
        expect(page.locator("#vps-state")).to_contain_text("Stopped")
        path = []
        for _ in range(MAX_TABS):
            page.keyboard.press("Tab")
            now = focused(page)
            path.append(now["text"][:20])
            assert now["visible"], f"focus not visible on {now}"
            if now["inPower"] and now["text"] == "Start":
                break
        else:
            raise AssertionError(f"Tab never reached the Start button; it went through {path}")
        page.keyboard.press("Enter")
        finished(page, "Start")
        expect(page.locator("#vps-state")).to_contain_text("Running", timeout=OPERATION_TIMEOUT)
        started = Operation.objects.get(action="node.vps.start", target_id=str(vps.ctid))
        assert started.user == kim and started.status == "succeeded"
        assert node_runtime(stack).status(vps.ctid).running
    finally:
        vps.refresh_from_db()
        operation_finished(services.destroy(admin, vps))
