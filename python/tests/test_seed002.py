"""The PyDistributed shapes (seed 002) on zhub, and its key-value scenario: four processes,
each setting and reading back its own key 1,000 times."""

from __future__ import annotations

import multiprocessing
import threading

import zhub
from zhub import keyvalue


def kv_client(url: str, results: "multiprocessing.Queue[tuple[str, int]]") -> None:
    """Seed 002's kv_client, ported: the same loop, with zhub's URL."""
    client = keyvalue.KeyValueClient(url)
    client_id = client._client_id
    count = 0
    while count < 1000:
        client.set(client_id, count)
        res = client.get(client_id)
        assert count == res, (count, res)
        count += 1
    client.close()
    results.put((client_id, count))


def test_four_processes_each_set_and_get_a_thousand_times(broker):
    # spawn, not fork: a forked child would inherit the parent's ZeroMQ state.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=kv_client, args=(broker.url, results)) for _ in range(4)]
    for p in processes:
        p.start()
    got = [results.get(timeout=25) for _ in processes]
    for p in processes:
        p.join(timeout=5)
        assert p.exitcode == 0
    assert sorted(count for _, count in got) == [1000] * 4
    with zhub.Client.connect(broker.url) as client:
        for client_id, _ in got:
            assert client.kv.get(client_id) == 999


def test_ping_pong_on_the_message_bus(broker):
    ping = zhub.MessageBusClient(broker.url)
    pong = zhub.MessageBusClient(broker.url)
    ping.subscribe("pongs")
    pong.subscribe("pings")
    # No sleep after subscribe: it returns once the subscription is live.
    for _ in range(3):
        ping.publish("pings", "ping")
        assert pong.receive(timeout=5) == "ping"
        pong.publish("pongs", "pong")
        assert ping.receive(timeout=5) == "pong"
    assert ping.receive(timeout=0.05) is None
    ping.close()
    pong.close()


def test_a_task_queue_gives_each_task_to_one_worker(broker):
    served: list[str] = []
    lock = threading.Lock()

    def handler(name: str):
        def work(task: int) -> dict:
            with lock:
                served.append(name)
            return {"square": task * task, "by": name}

        return work

    workers = [zhub.TaskQueueWorker("squares", handler(f"w{i}"), broker.url) for i in range(2)]
    for w in workers:
        w.start()
    client = zhub.TaskQueueClient("squares", broker.url)
    try:
        from conftest import request_when_served

        request_when_served(client.client, "squares", zhub._wire.encode_body(0))
        with lock:
            served.clear()
        answers = [client.submit(i) for i in range(10)]
        assert [a["square"] for a in answers] == [i * i for i in range(10)]
        assert len(served) == 10
    finally:
        client.close()
        for w in workers:
            w.stop()


def test_an_event_source_replays_and_follows(broker):
    source = zhub.EventSource("clicks", broker.url)
    again = zhub.EventSource("clicks", broker.url)  # the stream exists: taken as it is
    assert source.emit({"x": 1}) == 0
    assert again.emit({"x": 2}) == 1
    assert list(source.replay()) == [(0, {"x": 1}), (1, {"x": 2})]
    follow = source.follow()
    again.emit({"x": 3})
    assert next(follow) == (2, {"x": 3})
    source.close()
    again.close()


def test_a_program_can_start_its_own_broker(tmp_path):
    from conftest import BROKER

    with zhub.MessageBusBroker(binary=BROKER, ipc_dir=str(tmp_path)) as broker:
        store = keyvalue.KeyValueClient(broker.url)
        store.set(("a", 1), [1, 2])
        assert store.get(("a", 1)) == [1, 2]
        assert store.delete(("a", 1)) and not store.delete(("a", 1))
        store.close()
