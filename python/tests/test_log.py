"""The event log from Python: create, append, read, tail, consumer groups, journals, and the
Rust CLI replaying what Python appended."""

from __future__ import annotations

import json
import threading

import pytest

import zhub
from zhub import RequestErrorKind


def test_create_append_read(broker):
    with zhub.Client.connect(broker.url) as client:
        log = client.log
        log.create("orders", fsync="never", segment_bytes=1 << 20)
        with pytest.raises(zhub.RequestError) as caught:
            log.create("orders")
        assert caught.value.kind is RequestErrorKind.REJECTED
        assert log.append("orders", {"id": 1}) == 0
        assert log.append_bytes("orders", b"raw", key=b"k2", timestamp_us=1_000_000) == 1
        assert log.append_batch("orders", [{"id": 3}, {"id": 4}]) == [2, 3]
        records = list(log.read("orders"))
        assert [r.offset for r in records] == [0, 1, 2, 3]
        assert records[0].decode() == {"id": 1}
        assert (records[1].key, records[1].value, records[1].timestamp_us) == (b"k2", b"raw", 1_000_000)
        assert [r.decode()["id"] for r in log.read("orders", 2)] == [3, 4]
        log.create("timed")
        for second in (1, 2, 3):
            log.append_bytes("timed", b"t", timestamp_us=second * 1_000_000)
        # From a time: the first record stamped at or after it.
        assert [r.offset for r in log.read("timed", time_us=2_000_000)] == [1, 2]
        (summary,) = [s for s in log.streams() if s.name == "orders"]
        assert (summary.first_offset, summary.next_offset, summary.records) == (0, 4, 4)
        with pytest.raises(zhub.RequestError) as caught:
            log.append("nosuch", 1)
        assert caught.value.kind is RequestErrorKind.REJECTED
        log.delete("orders")
        assert "orders" not in [s.name for s in log.streams()]
        log.create("every.ms", fsync="interval:5")


def test_tail_follows_appends(broker):
    with zhub.Client.connect(broker.url) as client, zhub.Client.connect(broker.url) as writer:
        client.log.create("events")
        writer.log.append("events", "before")
        tail = client.log.tail("events", wait=0.2)
        got = []

        def append_later() -> None:
            for i in range(3):
                writer.log.append("events", i)

        # The tail starts at the end as it was when tail() was called, so "before" is not
        # seen, and the appends made meanwhile are.
        thread = threading.Thread(target=append_later)
        thread.start()
        for record in tail:
            got.append(record.decode())
            if len(got) == 3:
                break
        thread.join()
        assert got == [0, 1, 2]


def test_consumer_groups_resume_from_their_commit(broker):
    with zhub.Client.connect(broker.url) as client:
        log = client.log
        log.create("jobs")
        log.append_batch("jobs", list(range(5)))
        first = log.consumer("jobs", "workers")
        assert first.committed is None
        assert [first.poll().decode() for _ in range(3)] == [0, 1, 2]
        first.commit()
        assert first.committed == 3 and log.position("jobs", "workers") == 3
        first.poll()  # read and not committed: the next consumer reads it again
        second = log.consumer("jobs", "workers")
        assert second.position == 3
        assert [second.poll().decode(), second.poll().decode()] == [3, 4]
        assert second.poll(wait=0.05) is None
        other = log.consumer("jobs", "auditors")
        assert other.poll().decode() == 0
        second.seek(0)
        assert second.poll().offset == 0


def test_a_durable_topic_is_journaled_and_republished(broker):
    with zhub.Client.connect(broker.url) as client:
        client.log.journal("audit.", "audit")
        assert ("audit.", "audit") in client.log.journals()
        client.publish("audit.login", {"user": "ada"})
        # The journal is written by the broker's bus thread: a long poll waits for it.
        records, _ = client.log.read_batch("audit", 0, wait=5)
        (record,) = records
        message = record.message()
        assert (message.topic, message.decode(), message.publisher) == ("audit.login", {"user": "ada"}, client.publisher_id)
        sub = client.subscribe("audit.")
        assert client.log.republish("audit") == 1
        again = sub.recv(timeout=5)
        assert again is not None and again.decode() == {"user": "ada"} and again.seq == message.seq
        client.log.unjournal("audit.", "audit")
        assert ("audit.", "audit") not in client.log.journals()


def test_zhub_log_reads_what_python_appended_and_back(broker):
    with zhub.Client.connect(broker.url) as client:
        client.log.create("shared")
        client.log.append("shared", {"from": "python"})
        client.log.append_bytes("shared", b"plain", key=b"k")
        out = broker.cli("log", "read", "shared", "--json")
        lines = [json.loads(line) for line in out.stdout.splitlines()]
        assert [line["offset"] for line in lines] == [0, 1]
        assert lines[0]["body"] == {"from": "python"}
        assert lines[1]["body"] == "plain"
        broker.cli("log", "append", "shared", '{"from": "rust"}', "--format", "json")
        assert list(client.log.read("shared", 2))[0].decode() == {"from": "rust"}
