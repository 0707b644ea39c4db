"""The browser console against a real node: supervisor, console relay, node worker and a running busybox VPS."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from kernel.runtime import Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.core.audit.models import ObjectChange
from panel.nodes import services as nodes
from panel.vps import services
from panel.vps.console.models import ConsoleMode, ConsoleSession
from tests.browser.test_login import PASSWORD, log_in
from tests.browser.test_vps_pages import node_ready, node_runtime
from tests.services import finished, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MiB = 2**20


def screen(page: Page) -> str:
    return page.locator("#console .xterm-rows").inner_text()


def run(page: Page, command: str) -> None:
    page.locator("#console").click()
    page.keyboard.type(command)
    page.keyboard.press("Enter")


def shows(page: Page, pattern: str, what: str) -> str:
    """The terminal's text once `pattern` (a regular expression) matches it."""
    try:
        return wait_for(lambda: re.search(pattern, screen(page)), 20, what).group(0)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the terminal shows:\n{screen(page)}") from None


def foreground_sleep(rt: Runtime, ctid: int) -> bool:
    """A `sleep` runs in the VPS as the console's foreground job (where Ctrl-C's SIGINT goes)."""
    script = "for p in $(pidof sleep); do cut -d' ' -f5,8 /proc/$p/stat; done"
    lines = rt.exec(ctid, ["sh", "-c", script], timeout=10).stdout.decode().split("\n")
    return any(len(set(line.split())) == 1 for line in lines if line.strip())  # its group owns the terminal


def replay(page: Page, ticket: str) -> str:
    """Open the console WebSocket again with a used ticket; the server's first answer."""
    return page.evaluate("""async (ticket) => {
        const box = document.getElementById("console");
        const ws = new WebSocket(`ws://${location.host}${box.dataset.wsPath}`);
        return await new Promise((resolve) => {
            ws.onopen = () => ws.send(JSON.stringify({ticket, cols: 80, rows: 24}));
            ws.onmessage = (event) => resolve(typeof event.data === "string" ? event.data : "output");
            ws.onclose = (event) => resolve(`closed ${event.code}`);
        });
    }""", ticket)


def in_terminal(page: Page) -> bool:
    return page.evaluate("document.getElementById('console').contains(document.activeElement)")


def keyboard_in_and_out(page: Page) -> None:
    """Tab into the terminal from the mode links, type a command, Tab stays (it goes to the VPS), Ctrl+] leaves."""
    expect(page.locator("#console-keys")).to_contain_text("Ctrl+] to leave the terminal")
    expect(page.locator("#console .xterm-accessibility-tree")).to_have_count(1)  # screenReaderMode
    page.get_by_role("navigation", name="Console mode").get_by_role("link").last.focus()
    page.keyboard.press("Tab")
    assert in_terminal(page)
    page.keyboard.type("echo kb-$((6*7))")
    page.keyboard.press("Enter")
    shows(page, r"kb-42", "keys typed after tabbing in to reach the VPS")
    page.keyboard.press("Tab")
    assert in_terminal(page), "Tab is the VPS's key while the terminal has the focus"
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+BracketRight")
    expect(page.get_by_role("button", name="Detach")).to_be_focused()
    assert not in_terminal(page)
    page.keyboard.press("Shift+Tab")
    assert in_terminal(page), "Shift+Tab from the next control goes back into the terminal"


def test_customer_uses_the_console_and_a_login_shell(page, live_panel, console_node):
    stack = console_node
    admin = User.objects.create_user("con-admin", password=PASSWORD, role=Role.ADMIN)
    carol = User.objects.create_user("con-carol", password=PASSWORD, role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=carol, node=node, template="busybox", hostname="console-vps",
                                  limits={"ram": 256 * MiB})
    finished(op)
    vps.refresh_from_db()
    node_ready(stack.node_name)  # a node that has not reported yet shows its VPSs as "unknown", without a console
    try:
        log_in(page, live_panel, "con-carol")
        page.goto(f"{live_panel}/vps/{vps.ctid}/")
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Console").click()
        status = page.locator("#console-status")
        expect(status).to_have_text("Connected")
        first_ticket = page.locator("#console").get_attribute("data-ticket")
        keyboard_in_and_out(page)

        run(page, "hostname")
        shows(page, r"hostname\s*\n\s*console-vps\s*\n", "the VPS's host name under the command")

        run(page, "sleep 100")
        wait_for(lambda: foreground_sleep(node_runtime(stack), vps.ctid), 20, "sleep to run in the foreground")
        page.keyboard.press("Control+c")
        run(page, "echo back-$((40+2))")
        shows(page, r"back-42", "the prompt back after Ctrl-C")

        before = page.locator("#console").get_attribute("data-size")
        page.set_viewport_size({"width": 900, "height": 560})
        expect(page.locator("#console")).not_to_have_attribute("data-size", before)
        size = page.locator("#console").get_attribute("data-size")
        run(page, "stty size")
        shows(page, rf"stty size\s*\n\s*{size}\s*\n", f"stty size to print the browser's {size}")

        page.get_by_role("button", name="Detach").click()
        expect(status).to_have_text("Detached")
        page.get_by_role("button", name="Attach again").click()
        expect(status).to_have_text("Connected")
        shows(page, r"back-42", "earlier output after reattaching (the supervisor's ring buffer)")

        answer = replay(page, first_ticket)
        assert "already used" in answer or "unknown, expired or already used" in answer, answer

        page.goto(f"{live_panel}/vps/{vps.ctid}/console/?mode=shell")
        expect(status).to_have_text("Connected")
        run(page, "tty; hostname")
        shows(page, r"/dev/pts/\d+\s*\n\s*console-vps", "a login shell on a pty of its own")
        page.goto(f"{live_panel}/vps/{vps.ctid}/")  # leaving the page ends the shell session

        sessions = wait_for(lambda: list(ConsoleSession.objects.filter(user=carol, ended__isnull=False)
                                         .order_by("started")) if ConsoleSession.objects.filter(
                                             user=carol, ended__isnull=True).count() == 0 else None,
                            30, "every console session to be logged as ended")
        assert [s.mode for s in sessions] == [ConsoleMode.CONSOLE, ConsoleMode.CONSOLE, ConsoleMode.SHELL]
        assert sessions[0].end_reason == "closed by the browser" and sessions[0].bytes_out > 0
        logged = ObjectChange.objects.filter(content_type__model="consolesession", user=carol)
        assert sorted(logged.values_list("action", flat=True)) == ["create"] * 3 + ["update"] * 3
    finally:
        vps.refresh_from_db()
        finished(services.destroy(admin, vps))
