"""Usage on the VPS page in Chromium: a real VPS hits its numproc limit, the node's sampling carries the
failcnt into the panel, and the customer sees it in the beancounter table, in words, and in the graphs."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.usage.models import Beancounter, Sample
from panel.vps import services
from tests.browser.test_login import PASSWORD, log_in
from tests.services import terminal, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NUMPROC = 16


def test_the_beancounter_table_shows_the_failcnt_of_a_vps_that_hit_numproc(page, live_panel, stack, tmp_path):
    # A node of this test that samples every second (the session's node samples once a minute).
    name = f"{stack.node_name}-ub"
    env = {"CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-ub"}
    stack.start_node_worker(tmp_path, name="usage-browser-node", CTPANEL_USAGE_SECONDS="1", **env)
    node, _ = nodes.register_node(name)
    admin = User.objects.create_user("boss", password=PASSWORD, role=Role.ADMIN)
    carol = User.objects.create_user("carol", password=PASSWORD, role=Role.CUSTOMER)
    vps, op = services.create_vps(admin, customer=carol, node=node, template="busybox", hostname="busy",
                                  limits={"numproc": NUMPROC, "ram": 256 * 2**20})
    runtime = Runtime(KernelNodeConfig(node=name, state_root=env["CTPANEL_STATE_ROOT"],
                                       cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    try:
        assert terminal(op, timeout=120).status == "succeeded", op.error_message
        wait_for(lambda: Beancounter.objects.filter(vps=vps, resource="numproc").exists(), 30, "numproc row")

        log_in(page, live_panel, "carol")
        page.goto(f"{live_panel}/vps/{vps.ctid}/")
        numproc = page.locator("#vps-usage tr").filter(has=page.locator("code", has_text="numproc"))
        expect(numproc.locator("td").last).to_have_text("0")
        expect(numproc).not_to_have_class(re.compile("row-bad"))

        # More processes than the limit allows: the forks past it are refused inside the VPS.
        script = "for i in $(seq 40); do sleep 1000 >/dev/null 2>&1 </dev/null & done; echo done"
        runtime.exec(vps.ctid, ["sh", "-c", script], timeout=60)
        counted = wait_for(lambda: Beancounter.objects.filter(vps=vps, resource="numproc", failcnt__gt=0).first(),
                           30, "numproc failcnt in the panel")

        page.reload()
        expect(numproc).to_have_class(re.compile("row-bad"))
        refused = int(numproc.locator("td").last.inner_text().split()[0])
        assert refused >= counted.failcnt > 0
        expect(numproc.locator("td").nth(3)).to_have_text(str(NUMPROC))  # the limit column
        expect(page.locator("#vps-usage").get_by_text(re.compile(
            rf"Processes and threads reached the limit \(\d+ of {NUMPROC}\): \d+ requests? refused"))).to_be_visible()

        # The hour graph draws the samples the node sent.
        assert Sample.objects.filter(vps=vps).count() >= 2
        status = page.locator("#vps-graphs .graphs-status")
        expect(status).to_contain_text(re.compile(r"\d+ points? over the last hour"))
        expect(page.locator("#vps-graphs canvas")).to_have_count(4)
        expect(page.locator('[data-summary="cpu"]')).to_contain_text("average")
    finally:
        terminal(services.destroy(admin, vps), timeout=120)
