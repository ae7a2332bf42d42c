"""The key-value store from Python: every operation, watch, a replica, and the Rust CLI."""

from __future__ import annotations

import json

import pytest

import zhub
from zhub import Mismatch, RequestErrorKind, Stored


def test_every_operation(broker):
    with zhub.Client.connect(broker.url) as client:
        kv = client.kv
        assert kv.get("config.missing") is None
        assert kv.get("config.missing", 7) == 7
        r1 = kv.put("config.rate", {"per_s": 10})
        assert kv.get("config.rate") == {"per_s": 10}
        entry = kv.get_entry("config.rate")
        assert entry is not None and entry.revision == r1 and entry.expires_at_us is None
        r2 = kv.put_bytes("config.raw", b"\x00\xff", ttl=60)
        assert r2 > r1
        raw = kv.get_entry("config.raw")
        assert raw is not None and raw.value == b"\x00\xff" and raw.expires_at_us is not None
        assert kv.cas("config.rate", r1 - 1 if r1 else 99, "x") == Mismatch(r1)
        outcome = kv.cas("config.rate", r1, {"per_s": 20})
        assert isinstance(outcome, Stored) and outcome.revision > r2
        assert kv.cas("config.new", None, 1) == Stored(outcome.revision + 1)
        assert kv.cas("config.new", None, 2) == Mismatch(outcome.revision + 1)
        assert kv.incr("config.count") == (1, outcome.revision + 2)
        value, _ = kv.incr("config.count", 41)
        assert value == 42 and kv.get("config.count") == 42
        with pytest.raises(zhub.RequestError) as caught:
            kv.incr("config.rate", 1)
        assert caught.value.kind is RequestErrorKind.REJECTED
        keys = [e.key for e in kv.list_all("config.")]
        assert keys == ["config.count", "config.new", "config.rate", "config.raw"]
        page, more = kv.list("config.", limit=2)
        assert [e.key for e in page] == ["config.count", "config.new"] and more
        history = kv.history("config.rate")
        assert [c.kind for c in history] == ["put", "put"]
        assert history[0].decode() == {"per_s": 20}
        deleted = kv.delete("config.rate")
        assert deleted is not None and kv.get("config.rate") is None
        assert kv.delete("config.rate") is None
        assert kv.history("config.rate", 1)[0].kind == "delete"
        entries, revision = kv.snapshot("config.")
        assert len(entries) == 3 and revision == deleted + 1
        for bad in ["", "a\x01b", "k" * 1025]:
            with pytest.raises(zhub.RequestError) as caught:
                kv.get(bad)
            assert caught.value.kind is RequestErrorKind.BAD_REQUEST


def test_batches(broker):
    with zhub.Client.connect(broker.url) as client:
        kv = client.kv
        revisions = kv.put_many({f"b.{i}": str(i).encode() for i in range(10)})
        assert len(revisions) == 10 and revisions == sorted(revisions)
        entries = kv.get_many(["b.3", "b.none", "b.9"])
        assert entries[1] is None
        assert (entries[0].value, entries[0].revision) == (b"3", revisions[3])
        assert entries[2].value == b"9"
        deleted = kv.delete_many(["b.0", "b.absent"])
        assert deleted[0] is not None and deleted[1] is None
        with pytest.raises(zhub.RequestError) as caught:
            kv.put_many([("b.ok", b"x"), ("bad\x01", b"y")])
        assert caught.value.kind is RequestErrorKind.BAD_REQUEST
        assert kv.get_bytes("b.ok") is None
        with pytest.raises(zhub.RequestError) as caught:
            kv.get_many([])
        assert caught.value.kind is RequestErrorKind.BAD_REQUEST


def test_a_watch_sees_every_change_after_it_returns(broker):
    with zhub.Client.connect(broker.url) as client:
        with client.kv.watch("w.") as watcher:
            client.kv.put("w.a", 1)
            client.kv.put("other", 2)
            client.kv.delete("w.a")
            put = watcher.recv(timeout=5)
            delete = watcher.recv(timeout=5)
            assert put is not None and (put.key, put.kind, put.decode()) == ("w.a", "put", 1)
            assert delete is not None and (delete.key, delete.kind, delete.value) == ("w.a", "delete", None)
            assert watcher.recv(timeout=0.1) is None
            assert watcher.lost == 0


def test_a_replica_follows_the_store(broker):
    with zhub.Client.connect(broker.url) as client:
        client.kv.put("r.before", "old")
        with client.kv.replica("r.") as replica:
            assert replica.get("r.before") == "old"
            assert replica.snapshots == 1 and replica.is_connected
            revision = client.kv.put("r.after", [1, 2])
            client.kv.put("elsewhere", 0)
            assert replica.wait_for(revision, 5)
            assert replica.get("r.after") == [1, 2]
            gone = client.kv.delete("r.before")
            assert gone is not None and replica.wait_for(gone, 5)
            assert set(replica.entries()) == {"r.after"}


def test_zhub_kv_and_python_read_each_others_writes(broker):
    broker.cli("kv", "put", "shared.from_rust", "hello")
    broker.cli("kv", "put", "shared.json", '{"a": [1, 2]}', "--format", "json")
    with zhub.Client.connect(broker.url) as client:
        assert client.kv.get("shared.from_rust") == "hello"
        assert client.kv.get("shared.json") == {"a": [1, 2]}
        client.kv.put("shared.from_python", {"n": 5, "s": "ünïcode"})
        client.kv.incr("shared.counter", 3)
    out = broker.cli("kv", "get", "shared.from_python", "--json")
    got = json.loads(out.stdout)
    assert got["key"] == "shared.from_python" and got["value"] == {"n": 5, "s": "ünïcode"}
    assert broker.cli("kv", "get", "shared.counter").stdout.strip() == b"3"


def test_a_python_watch_sees_zhub_kv_put(broker):
    with zhub.Client.connect(broker.url) as client:
        with client.kv.watch("cli.") as watcher:
            broker.cli("kv", "put", "cli.k", '{"v": 1}', "--format", "json")
            broker.cli("kv", "del", "cli.k")
            put, delete = watcher.recv(timeout=5), watcher.recv(timeout=5)
            assert put is not None and (put.key, put.kind, put.decode()) == ("cli.k", "put", {"v": 1})
            assert delete is not None and (delete.key, delete.kind) == ("cli.k", "delete")


def test_a_replica_keeps_its_data_and_catches_up_after_a_broker_restart(tmp_path):
    from conftest import start_broker

    first = start_broker(tmp_path)
    with zhub.Client.connect(first.url) as client:
        client.kv.put("rr.a", 1)
    replica = zhub.Replica.connect(first.url, "rr.", timeout=1)
    try:
        assert replica.get("rr.a") == 1
        reached = replica.revision
        first.stop()
        # The replica's long poll fails once the broker is gone; its data stays.
        with replica._changed:
            assert replica._changed.wait_for(lambda: not replica._connected, 10)
        assert replica.get("rr.a") == 1
        second = start_broker(tmp_path)  # same data directory: the store is as it was
        try:
            with zhub.Client.connect(second.url) as client:
                revision = client.kv.put("rr.b", 2)
            assert revision >= reached
            assert replica.wait_for(revision, 10)
            assert replica.is_connected
            assert (replica.get("rr.a"), replica.get("rr.b")) == (1, 2)
            assert replica.wait_change(replica.revision, 0.05) is None
        finally:
            second.stop()
    finally:
        replica.close()
