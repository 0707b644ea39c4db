"""VPS API latency and throughput with 10,000 VPSs, 200 resellers and 2,000 customers.

    ./ctl test bench/panel_api.py -p tests.services -o python_functions=run -s

fills the test profile's PostgreSQL, starts uvicorn on loopback (the
`live_panel` fixture) and measures, per role (admin, reseller, customer),
GET /api/vps/vps/?limit=50 (a page at a random offset) and GET
/api/vps/vps/<ctid>/ over token-authenticated keep-alive connections:
p50/p95 sequentially, then requests/s with 8 concurrent clients.
BENCH_VPSS, BENCH_RESELLERS, BENCH_CUSTOMERS, BENCH_REQUESTS change the sizes.
Not a test: it is collected only when named, and asserts nothing.
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import threading
import time
import urllib.parse

import pytest

# The API's per-user throttle would measure itself, not the API.
os.environ.setdefault("CTPANEL_API_RATE_USER", "100000000/min")

CONCURRENCY = 8


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fill(vpss: int, resellers: int, customers: int):
    from django.contrib.auth.hashers import make_password

    from panel.accounts.choices import Role
    from panel.accounts.models import User
    from panel.nodes import ippools
    from panel.nodes.models import IPAddress, Node
    from panel.plans import services as plans
    from panel.vps.models import VPS

    password = make_password(None)
    admin = User.objects.create(username="bench-admin", role=Role.ADMIN, password=password)
    reseller_rows = User.objects.bulk_create(
        [User(username=f"bench-r{i}", role=Role.RESELLER, password=password) for i in range(resellers)])
    customer_rows = User.objects.bulk_create(
        [User(username=f"bench-c{i}", role=Role.CUSTOMER, owner=reseller_rows[i % resellers], password=password)
         for i in range(customers)])
    nodes = Node.objects.bulk_create([Node(name=f"bench-n{i}", state="up") for i in range(10)])
    plan = plans.create_plan(admin, name="bench", ram=2**30)
    pool = ippools.create_pool(name="bench-v6", family=6, network="2001:db8:b::/64", unit_prefix=128, node=nodes[0])
    rows = VPS.objects.bulk_create(
        [VPS(ctid=1_000_000 + i, node=nodes[i % len(nodes)], customer=customer_rows[i % customers], plan=plan,
             hostname=f"vps{i}.example.com", template="debian-12", limits={"ram": 2**30}, state="running")
         for i in range(vpss)], batch_size=2000)
    IPAddress.objects.bulk_create(
        [IPAddress(pool=pool, address=f"2001:db8:b::{i + 1:x}", prefix_length=128, owner=vps.customer,
                   assigned_to=vps.budget_holder) for i, vps in enumerate(rows)], batch_size=2000)
    return admin, reseller_rows[0], customer_rows[0], rows


class Client:
    """One keep-alive connection with a bearer token."""

    def __init__(self, base: str, token: str) -> None:
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Host": "127.0.0.1"}

    def get(self, path: str) -> float:
        started = time.perf_counter()
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status}")
        return time.perf_counter() - started


def paths(kind: str, visible: int, ctids: list[int], n: int) -> list[str]:
    rnd = random.Random(kind)  # noqa: S311 (repeatable request mix, not a secret)
    if kind == "list":
        return [f"/api/vps/vps/?limit=50&offset={rnd.randrange(max(1, visible - 50))}" for _ in range(n)]
    return [f"/api/vps/vps/{rnd.choice(ctids)}/" for _ in range(n)]


def measure(base: str, token: str, todo: list[str]) -> tuple[list[float], float]:
    client = Client(base, token)
    client.get(todo[0])  # warm the connection
    sequential = [client.get(p) for p in todo]
    chunks = [todo[i::CONCURRENCY] for i in range(CONCURRENCY)]

    def worker(chunk: list[str]) -> None:
        own = Client(base, token)
        for p in chunk:
            own.get(p)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sequential, len(todo) / (time.perf_counter() - started)


@pytest.mark.django_db(transaction=True)
def run(live_panel) -> None:
    from panel.accounts import services as accounts
    from panel.vps.models import VPS

    sizes = (int(os.environ.get("BENCH_VPSS", "10000")), int(os.environ.get("BENCH_RESELLERS", "200")),
             int(os.environ.get("BENCH_CUSTOMERS", "2000")))
    requests = int(os.environ.get("BENCH_REQUESTS", "200"))
    started = time.perf_counter()
    admin, reseller, customer, _ = fill(*sizes)
    print(f"\nfilled {sizes[0]} VPSs, {sizes[1]} resellers, {sizes[2]} customers in "
          f"{time.perf_counter() - started:.1f} s")
    print(f"{'role':<10}{'request':<8}{'visible':>8}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}"
          f"{f'req/s x{CONCURRENCY}':>12}")
    for role, user in (("admin", admin), ("reseller", reseller), ("customer", customer)):
        _, token = accounts.create_token(user, name="bench")
        ctids = list(VPS.objects.restrict(user).values_list("ctid", flat=True))
        for kind in ("list", "detail"):
            sequential, rate = measure(live_panel, token, paths(kind, len(ctids), ctids, requests))
            ms = [s * 1000 for s in sequential]
            print(f"{role:<10}{kind:<8}{len(ctids):>8}{percentile(ms, 0.5):>9.1f}{percentile(ms, 0.95):>9.1f}"
                  f"{statistics.fmean(ms):>9.1f}{rate:>12.0f}")
