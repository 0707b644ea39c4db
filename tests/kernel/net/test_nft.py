"""nft batches under the namespace's lock: spooled batches of concurrent senders go in together,
each takes effect exactly once, and a bad one fails only its own sender."""

from __future__ import annotations

import os
import threading

import pytest

from kernel.errors import CommandFailed, NotFound
from kernel.net.nft import Nft, lock_path

pytestmark = pytest.mark.kernel

SENDERS = 12


def _send_all(nft: Nft, texts: list[str]) -> list[BaseException | None]:
    """Every text as a batch from a thread of its own, all released at once; each sender's outcome."""
    outcomes: list[BaseException | None] = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def send(i: int) -> None:
        barrier.wait()
        try:
            nft.batch(texts[i])
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def _counters(nft: Nft) -> list[str]:
    return sorted(nft.counters("netdev", "ctpt_comb"))


def _rules(nft: Nft) -> list[str]:
    return sorted(item["rule"]["comment"] for item in nft.list("chain", "netdev", "ctpt_comb", "c") if "rule" in item)


def test_concurrent_batches_each_take_effect_once(netns, tmp_path):
    nft = Nft(netns, lock=lock_path(str(tmp_path), netns))
    nft.batch("table netdev ctpt_comb {}\nadd chain netdev ctpt_comb c\n")
    # A rule added twice is there twice: each batch's rule once means each batch ran once.
    texts = [f'add rule netdev ctpt_comb c counter comment "r{i:02d}"\n' for i in range(SENDERS)]
    assert _send_all(nft, texts) == [None] * SENDERS
    assert _rules(nft) == [f"r{i:02d}" for i in range(SENDERS)]
    assert os.listdir(lock_path(str(tmp_path), netns) + ".spool") == []  # every batch and outcome collected


def test_a_bad_batch_fails_its_sender_only(netns, tmp_path):
    nft = Nft(netns, lock=lock_path(str(tmp_path), netns))
    nft.batch("table netdev ctpt_comb {}\n")
    texts = [f"add counter netdev ctpt_comb c{i}\n" for i in range(SENDERS)]
    texts[3] = "add counter netdev ctpt_comb c3\nadd counter netdev ctpt_no_such_table c3\n"
    texts[7] = "add counter netdev ctpt_comb c7\nthis is not nft\n"
    outcomes = _send_all(nft, texts)
    assert isinstance(outcomes[3], NotFound)  # "No such file or directory": the same error as a run of its own
    assert isinstance(outcomes[7], CommandFailed) and "syntax error" in outcomes[7].stderr
    assert [i for i, o in enumerate(outcomes) if o is not None] == [3, 7]
    assert _counters(nft) == sorted(f"c{i}" for i in range(SENDERS) if i not in (3, 7))
    assert os.listdir(lock_path(str(tmp_path), netns) + ".spool") == []


def test_without_a_lock_nothing_is_spooled(netns, tmp_path):
    nft = Nft(netns)
    nft.batch("table netdev ctpt_comb {}\nadd counter netdev ctpt_comb c0\n")
    assert _counters(nft) == ["c0"]
    with pytest.raises(CommandFailed):
        nft.batch("not nft\n")
