"""Shaping and traffic counters, measured with iperf3 between the test host and a VPS.

The VPS end of iperf3 is the host's binary running in the VPS's network namespace only
(the busybox template has no iperf3): the measured path is the VPS's veth, its netdev
table and its qdisc. Rates are medians of three runs, with one retry of the whole set.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time

import pytest

from kernel.net.config import Rate, VpsNet
from tests.kernel.net.conftest import Lab, in_ns, vps_addrs

pytestmark = pytest.mark.kernel

RATE = 20_000_000
#: TCP payload per Ethernet frame: 1448 bytes of a 1514-byte frame (14 Ethernet + 20 IPv4 + 32 TCP
#: with timestamps): counters may exceed the payload that crossed the veth by at most
#: 66/1448 = 4.6 %, plus the handshake and iperf3's control connection, in either direction.
#: GSO super-packets carry headers once, so less.
MSS = 1448
OVERHEAD = 66 / MSS


def _iperf(lab: Lab, addr: str, *, reverse: bool, extra: tuple[str, ...] = ()) -> dict:
    pid = lab.runtime.status(lab.made[0]).init_pid
    server = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "iperf3", "-s", "-1", "-B", addr, "-p", "5201"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        args = ["iperf3", "-c", addr, "-p", "5201", "-t", "2", "-J", *(["-R"] if reverse else []), *extra]
        for _ in range(100):  # until the server listens
            data = json.loads(in_ns(lab.peer, *args, check=False, timeout=30).stdout or "{}")
            if "error" not in data and "end" in data:
                return data
            time.sleep(0.05)
        raise AssertionError(f"iperf3 failed: {data.get('error')}")
    finally:
        server.kill()
        server.wait()


def _median_rate(lab: Lab, addr: str, *, reverse: bool) -> float:
    runs = [_iperf(lab, addr, reverse=reverse)["end"]["sum_received"]["bits_per_second"] for _ in range(3)]
    return statistics.median(runs)


def _assert_rate(lab: Lab, addr: str, target: int, *, reverse: bool) -> None:
    """Median of three runs within 15 % of `target`; the whole set is retried once."""
    measured = _median_rate(lab, addr, reverse=reverse)
    if abs(measured - target) > 0.15 * target:
        measured = _median_rate(lab, addr, reverse=reverse)
    assert abs(measured - target) <= 0.15 * target, ("out" if reverse else "in", measured, target)


def _assert_counters(lab: Lab, ctid: int, addr: str) -> None:
    """The VPS's byte counters against one iperf3 run each way: "in" with the VPS receiving, "out"
    with it sending (-R). The payload that crossed the VPS's veth lies between what iperf3's
    receiver read and what its sender wrote (plus retransmitted segments): data in flight or
    unread when the test ends crossed the wire uncounted by the receiver, written data still in
    the sender's buffer did not cross it. Headers add at most OVERHEAD; 64 KiB of slack cover the
    handshakes and iperf3's control connection. The ACKs go the other way."""
    for reverse in (False, True):
        before = lab.network.traffic().vps[ctid]
        result = _iperf(lab, addr, reverse=reverse)
        after = lab.network.traffic().vps[ctid]
        sent, received = result["end"]["sum_sent"], result["end"]["sum_received"]
        data, acks = ("out", "in") if reverse else ("in", "out")
        counted = getattr(after, f"{data}_bytes") - getattr(before, f"{data}_bytes")
        most = (sent["bytes"] + sent.get("retransmits", 0) * MSS) * (1 + OVERHEAD) + 65536
        assert received["bytes"] <= counted <= most, (data, received["bytes"], counted, sent)
        assert getattr(after, f"{acks}_packets") > getattr(before, f"{acks}_packets")


def test_counters_match_iperf3_bytes_both_ways(lab: Lab) -> None:
    """Unshaped, the sender is never far ahead of the receiver, so the window is a few socket
    buffers in gigabytes of traffic: a tight check of both directions."""
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4,)))
    _assert_counters(lab, a, a4)


def test_rate_both_ways_and_counters(lab: Lab) -> None:
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4,), rate=Rate(in_bps=RATE, out_bps=RATE)))
    for reverse in (False, True):  # False: the test host sends, the VPS receives ("in")
        _assert_rate(lab, a4, RATE, reverse=reverse)

    _assert_counters(lab, a, a4)  # shaped: the window is wide (see _assert_counters), the check coarse

    # Changed live, both ways.
    lab.network.set_rate(a, Rate(in_bps=RATE // 4, out_bps=RATE // 4))
    for reverse in (False, True):
        _assert_rate(lab, a4, RATE // 4, reverse=reverse)


def test_traffic_dropped_by_the_in_rate_is_not_counted(lab: Lab) -> None:
    """UDP at 10x the VPS's "in" rate: the excess is dropped before the "in" counter, so the VPS is
    not billed for traffic the node threw away, and the policer's own counter holds the drops.
    nft's limit starts with a full bucket of one second of the rate plus the burst, so at most
    rate x (time + 1 s) + burst passes (+ 20 % for iperf3's control connection)."""
    a4, _ = vps_addrs(0)
    rate = 1_000_000
    a = lab.vps(VpsNet(ips=(a4,), rate=Rate(in_bps=rate)))
    before = lab.network.traffic().vps[a]
    started = time.monotonic()
    _iperf(lab, a4, reverse=False, extra=("-u", "-b", str(10 * rate), "-l", "1400"))
    seconds = time.monotonic() - started
    counted = lab.network.traffic().vps[a].in_bytes - before.in_bytes
    assert counted <= (rate / 8 * (seconds + 1) + 16384) * 1.2, (counted, seconds)
    assert lab.counters(a)["venet0_shaped_in"] >= 1000  # ~1,800 of the ~2,000 datagrams a second


def test_counters_survive_a_restart(lab: Lab) -> None:
    a4, _ = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4,)))
    in_ns(lab.peer, "busybox", "ping", "-c", "3", "-W", "1", a4)
    first = lab.network.traffic()
    assert first.vps[a].in_packets >= 3 and first.vps[a].out_packets >= 3
    lab.stop(a)
    lab.runtime.start(a)
    in_ns(lab.peer, "busybox", "ping", "-c", "2", "-W", "1", a4)
    second = lab.network.traffic()
    assert second.epoch == first.epoch
    assert second.vps[a].in_packets >= first.vps[a].in_packets + 2
    assert second.vps[a].in_bytes > first.vps[a].in_bytes
