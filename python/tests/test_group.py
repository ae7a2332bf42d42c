"""Process groups from Python: ranks, views, the mailbox, barriers, synchronous sends and the
critical section."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import pytest

import zhub
from zhub import GroupErrorKind


@contextmanager
def members(url: str, name: str, n: int, **options) -> Iterator[list[zhub.Group]]:
    """``n`` members of ``name``, each with a client of its own, joined together (join
    returns once the group is full) and sorted by rank."""
    clients = [zhub.Client.connect(url) for _ in range(n)]
    with ThreadPoolExecutor(n) as pool:
        groups = list(pool.map(lambda c: zhub.Group.join(c, name, n, join_timeout=10, **options), clients))
    groups.sort(key=lambda g: g.rank)
    try:
        yield groups
    finally:
        for g in groups:
            g.leave()
        for c in clients:
            c.close()


def test_members_get_ranks_by_arrival_and_one_view(broker):
    with members(broker.url, "ranks", 3) as groups:
        assert [g.rank for g in groups] == [0, 1, 2]
        views = {g.view for g in groups}
        assert len(views) == 1
        (view,) = views
        assert view.size == 3 and view.group == "ranks"
        assert list(view.members) == [g.member_id for g in groups]


def test_groups_are_listed_with_their_views(broker):
    with members(broker.url, "listed.a", 2) as groups, members(broker.url, "listed.b", 1):
        with zhub.Client.connect(broker.url) as client:
            page = client.groups("listed.", limit=1)
            assert page["more"] is True
            (first,) = page["groups"]
            assert first["view"]["group"] == "listed.a"
            assert list(first["view"]["members"]) == [g.member_id for g in groups]
            assert first["token_holder"] is None
            rest = client.groups("listed.", after="listed.a")
            assert [g["view"]["group"] for g in rest["groups"]] == ["listed.b"]
            assert rest["more"] is False
            storage = client.storage_stats()
            assert "kv_ops" in storage and "log_syncs" in storage


def test_publish_broadcast_and_send_to(broker):
    with members(broker.url, "talk", 3) as (a, b, c):
        a.publish("to all")
        a.broadcast("to others")
        a.send_to(2, {"only": "c"})
        assert a.recv(timeout=5).decode() == "to all"
        assert a.recv(timeout=0.1) is None  # its own broadcast is not delivered back
        for g in (b, c):
            first, second = g.recv(timeout=5), g.recv(timeout=5)
            assert (first.decode(), second.decode()) == ("to all", "to others")
            assert first.sender == a.member_id and first.sender_rank == 0
            assert second.lamport == first.lamport + 1
        direct = c.recv(timeout=5)
        assert direct.decode() == {"only": "c"}
        assert b.recv(timeout=0.1) is None
        # The receive rule: max(local, stamp) + 1.
        assert c.clock == direct.lamport + 1
        with pytest.raises(zhub.GroupError) as caught:
            a.send_to(3, "nobody")
        assert caught.value.kind is GroupErrorKind.NO_SUCH_RANK


def test_barriers_hold_everyone_until_the_last_arrives(broker):
    with members(broker.url, "barrier", 3) as groups:
        passed = []
        lock = threading.Lock()

        def member(g: zhub.Group, arrive: threading.Event) -> None:
            arrive.wait(5)
            g.barrier(timeout=10)
            with lock:
                passed.append(g.rank)

        events = [threading.Event() for _ in groups]
        threads = [threading.Thread(target=member, args=(g, e)) for g, e in zip(groups, events)]
        for t in threads:
            t.start()
        events[0].set()
        events[1].set()
        # Two have arrived; the third has not, so nobody may pass.
        threads[0].join(0.3)
        assert passed == []
        events[2].set()
        for t in threads:
            t.join(10)
        assert sorted(passed) == [0, 1, 2]
        with pytest.raises(zhub.GroupError) as caught:
            groups[0].barrier(timeout=0.2)
        assert caught.value.kind is GroupErrorKind.TIMED_OUT


def test_synchronous_sends(broker):
    with members(broker.url, "sync", 3) as (a, b, c):
        a.broadcast_sync("everyone has it", timeout=5)
        # broadcast_sync returned: the message is in both mailboxes already.
        assert b.try_recv().decode() == "everyone has it"
        assert c.try_recv().decode() == "everyone has it"
        taken = threading.Event()

        def receiver() -> None:
            message = b.recv_from_sync(0, timeout=5)
            assert message.decode() == "rendezvous"
            taken.set()

        thread = threading.Thread(target=receiver)
        thread.start()
        a.send_to_sync(1, "rendezvous", timeout=5)
        thread.join(5)
        assert taken.is_set()
        with pytest.raises(zhub.GroupError) as caught:
            c.recv_from_sync(0, timeout=0.1)
        assert caught.value.kind is GroupErrorKind.TIMED_OUT


def test_the_critical_section_admits_one_member_at_a_time(broker):
    with members(broker.url, "mutex", 3) as groups:
        inside = []
        overlaps = []
        guard = threading.Lock()

        def member(g: zhub.Group) -> None:
            for _ in range(3):
                with g.lock(timeout=10):
                    with guard:
                        if inside:
                            overlaps.append((inside[:], g.rank))
                        inside.append(g.rank)
                    threading.Event().wait(0.01)
                    with guard:
                        inside.remove(g.rank)

        threads = [threading.Thread(target=member, args=(g,)) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert overlaps == []
        assert inside == []


def test_a_member_that_leaves_changes_the_view_and_ranks(broker):
    with members(broker.url, "churn", 3, heartbeat=0.05, dead_after=0.5) as groups:
        first, middle, last = groups
        version = first.view.version
        middle.leave()
        view = first.wait_view(version, 5)
        assert view is not None and view.size == 2
        assert last.wait_view(version, 5) is not None
        assert (first.rank, last.rank) == (0, 1)
        with pytest.raises(zhub.GroupError) as caught:
            first.recv_from_sync(2, timeout=0.1)
        assert caught.value.kind is GroupErrorKind.NO_SUCH_RANK


MEMBER_SCRIPT = """
import sys, zhub
client = zhub.Client.connect(sys.argv[1])
group = zhub.Group.join(client, sys.argv[2], int(sys.argv[3]), heartbeat=0.05, dead_after=0.5)
if sys.argv[4] == "lock":
    group.lock(timeout=10)
print(group.rank, flush=True)
sys.stdin.read()  # until killed
"""


def test_a_killed_member_leaves_the_view_and_its_token_is_made_anew(broker):
    import subprocess
    import sys

    name = "killed"
    with zhub.Client.connect(broker.url) as c1, zhub.Client.connect(broker.url) as c2:
        child = subprocess.Popen(
            [sys.executable, "-c", MEMBER_SCRIPT, broker.url, name, "3", "lock"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            with ThreadPoolExecutor(2) as pool:
                joins = [
                    pool.submit(zhub.Group.join, c, name, 3, heartbeat=0.05, dead_after=0.5, join_timeout=10)
                    for c in (c1, c2)
                ]
                a, b = [j.result(timeout=15) for j in joins]
            try:
                # The child prints its rank once it holds the token.
                assert child.stdout is not None
                child_rank = int(child.stdout.readline())
                version = a.view.version
                assert a.size == 3 and child_rank in (0, 1, 2)
                child.kill()
                child.wait()
                view = a.wait_view(version, 5)
                assert view is not None and view.size == 2
                assert b.wait_view(version, 5) is not None
                assert sorted([a.rank, b.rank]) == [0, 1]
                # The dead holder's token is made anew once, and goes on to a member that asks.
                with a.lock(timeout=5) as held:
                    assert held.generation == 1
            finally:
                # Before the clients close: their contexts end only once every socket has.
                a.leave()
                b.leave()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
