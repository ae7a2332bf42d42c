"""Seed 001's communicator on zhub: its scenario with three processes (REGISTER, barrier,
asynchronous sends, broadcastSync, sendToSync/receiveFromSync, the critical section)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import zhub


def scenario(com: zhub.Com, log: list, lock: threading.Lock) -> dict:
    me = com.getMyId()
    seen: dict = {"me": me}
    com.synchronize(3)
    if me == 1:
        com.broadcast("broadcast from P1")
        com.sendTo("only for P2", 2)
        com.publish("published by P1")
    # What each receives: P1 its own publish; the others the broadcast and the publish (P2
    # also its sendTo).
    expected = {0: 2, 1: 1, 2: 3}[me]
    seen["async"] = [com.receive(timeout=10).payload for _ in range(expected)]
    com.synchronize()
    seen["broadcastSync"] = com.broadcastSync({"from": 0}, from_id=0, my_id=me)
    if me == 0:
        com.sendToSync("rendezvous", 1, me)
    elif me == 1:
        seen["receiveFromSync"] = com.receiveFromSync(0)
    com.synchronize()
    if me in (1, 2):
        com.requestSC()
        with lock:
            log.append(("enter", me))
        with lock:
            log.append(("exit", me))
        com.releaseSC()
    com.synchronize()
    seen["clock"] = com.clock
    return seen


def test_the_scenario_of_seed_001(broker):
    log: list = []
    lock = threading.Lock()
    with ThreadPoolExecutor(3) as pool:
        coms = list(pool.map(lambda _: zhub.Com(3, "seed001", broker.url, timeout=20), range(3)))
        try:
            assert sorted(c.getMyId() for c in coms) == [0, 1, 2]
            results = list(pool.map(lambda c: scenario(c, log, lock), coms))
        finally:
            for c in coms:
                c.stop()
    by_id = {r["me"]: r for r in results}
    assert by_id[0]["async"] == ["broadcast from P1", "published by P1"]
    assert by_id[1]["async"] == ["published by P1"]
    assert by_id[2]["async"] == ["broadcast from P1", "only for P2", "published by P1"]
    assert all(r["broadcastSync"] == {"from": 0} for r in results)
    assert by_id[1]["receiveFromSync"] == "rendezvous"
    # The critical section: each entry followed by its own exit, never interleaved.
    assert len(log) == 4
    assert log[0][0] == "enter" and log[1] == ("exit", log[0][1])
    assert log[2][0] == "enter" and log[3] == ("exit", log[2][1])
    assert {log[0][1], log[2][1]} == {1, 2}
    assert all(r["clock"] > 0 for r in results)
