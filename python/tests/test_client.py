"""Connect, requests and publish/subscribe against a real broker."""

from __future__ import annotations

import time

import pytest

import zhub
from zhub import ConnectErrorKind, PublishErrorKind, RequestErrorKind, SubscribeErrorKind


def test_connect_learns_the_other_endpoints(broker):
    with zhub.Client.connect(broker.url) as client:
        info = client.info
        assert info.main == broker.url
        assert info.publish == f"ipc://{broker.dir / 'pub.sock'}"
        assert info.subscribe == f"ipc://{broker.dir / 'sub.sock'}"
        assert info.deliver == f"ipc://{broker.dir / 'deliver.sock'}"
        assert info.version
        assert info.max_message == 8 * 1024 * 1024
        stats = client.stats()
        assert stats["requests"]["received"] >= 1


def test_connect_without_a_broker_times_out_within_its_timeout(tmp_path):
    started = time.monotonic()
    with pytest.raises(zhub.ConnectError) as caught:
        zhub.Client.connect(f"ipc://{tmp_path}/nobody.sock", timeout=0.2)
    assert caught.value.kind is ConnectErrorKind.TIMED_OUT
    # The timeout plus the request's grace, not a linger on top.
    assert time.monotonic() - started < 2


def test_malformed_urls_are_refused():
    for url in ["127.0.0.1:5555", "tcp://host", "tcp://h:*", "ipc://"]:
        with pytest.raises(zhub.ConnectError) as caught:
            zhub.Client.connect(url)
        assert caught.value.kind is ConnectErrorKind.INVALID_URL, url


def test_request_errors_have_kinds(broker):
    with zhub.Client.connect(broker.url) as client:
        with pytest.raises(zhub.RequestError) as caught:
            client.request("nosuch", "hi", timeout=0.2)
        assert caught.value.kind is RequestErrorKind.NO_SERVICE
        with pytest.raises(zhub.RequestError) as caught:
            client.request("bad\nname", "hi")
        assert caught.value.kind is RequestErrorKind.BAD_REQUEST


def test_an_oversized_request_is_refused_at_once(broker):
    with zhub.Client.connect(broker.url) as client:
        limit = client.info.max_message
        started = time.monotonic()
        with pytest.raises(zhub.RequestError) as caught:
            client.kv.put_bytes("big", b"x" * (3 * limit))
        assert caught.value.kind is RequestErrorKind.TOO_LARGE
        assert time.monotonic() - started < 1
        # A client that does not know the limit (an older broker's info) meets the broker's
        # own 413 just over it.
        import dataclasses

        client._info = dataclasses.replace(client.info, max_message=0)
        with pytest.raises(zhub.RequestError) as caught:
            client.request_frames("zhub.kv", [b"x" * limit, b"y"])
        assert caught.value.kind is RequestErrorKind.TOO_LARGE
        # The connection is still good.
        assert client.kv.put("small", 1) >= 0


def test_a_subscriber_sees_the_first_message_published_after_subscribe(broker):
    with zhub.Client.connect(broker.url) as client, zhub.Client.connect(broker.url) as publisher:
        sub = client.subscribe("sensors.")
        # No sleep: subscribe returned only once its probe came back through the broker, and
        # the first publish waits until the broker takes messages.
        publisher.publish("sensors.temp", {"celsius": 21.5})
        publisher.publish_bytes("sensors.raw", b"\x00\x01")
        publisher.publish("other", "not for us")
        first = sub.recv(timeout=5)
        assert first is not None
        assert first.topic == "sensors.temp"
        assert first.decode() == {"celsius": 21.5}
        assert first.is_msgpack
        assert first.publisher == publisher.publisher_id
        assert first.seq == 1
        assert first.lamport >= 1
        second = sub.recv(timeout=5)
        assert second is not None
        assert (second.topic, second.body, second.is_msgpack, second.seq) == ("sensors.raw", b"\x00\x01", False, 1)
        assert second.value == b"\x00\x01"
        assert sub.recv(timeout=0.1) is None
        assert (sub.received, sub.gaps, sub.missed, sub.malformed) == (2, 0, 0, 0)
        # The subscriber's clock took in the publisher's.
        assert client.lamport > second.lamport


def test_sequences_count_per_topic_and_lamport_orders_a_reply(broker):
    with zhub.Client.connect(broker.url) as a, zhub.Client.connect(broker.url) as b:
        sub_b = b.subscribe("ping")
        sub_a = a.subscribe("pong")
        for _ in range(3):
            a.publish("ping", "ping")
        a.publish("ping2", "x")
        pings = [sub_b.recv(timeout=5) for _ in range(4)]
        assert [(m.topic, m.seq) for m in pings] == [("ping", 1), ("ping", 2), ("ping", 3), ("ping2", 1)]
        b.publish("pong", "pong")
        pong = sub_a.recv(timeout=5)
        assert pong is not None and pong.lamport > pings[-1].lamport


def test_many_messages_arrive_in_order_without_gaps(broker):
    with zhub.Client.connect(broker.url) as client:
        sub = client.subscribe("n")
        for i in range(2000):
            client.publish("n", i)
        got = [sub.recv(timeout=5).decode() for _ in range(2000)]
        assert got == list(range(2000))
        assert sub.gaps == 0 and sub.missed == 0


def test_publish_and_subscribe_refuse_bad_topics(broker):
    with zhub.Client.connect(broker.url) as client:
        for topic in ["", "$zhub.x", "a\x00b"]:
            with pytest.raises(zhub.PublishError) as caught:
                client.publish(topic, 1)
            assert caught.value.kind is PublishErrorKind.INVALID_TOPIC, topic
        with pytest.raises(zhub.SubscribeError) as caught:
            client.subscribe("x" * 1025)
        assert caught.value.kind is SubscribeErrorKind.INVALID_TOPIC


def test_subscribe_with_calls_back_on_its_own_thread(broker):
    import queue

    got: "queue.Queue[zhub.Message]" = queue.Queue()
    with zhub.Client.connect(broker.url) as client:
        subscription = client.subscribe_with(["cb"], got.put)
        client.publish("cb", "hello")
        assert got.get(timeout=5).decode() == "hello"
        subscriber = subscription.unregister()
        assert subscriber.received == 1
        subscriber.close()


def test_a_callback_that_raises_does_not_end_its_subscription(broker):
    import queue

    got: "queue.Queue[str]" = queue.Queue()

    def callback(message: zhub.Message) -> None:
        value = message.decode()
        if value == "bad":
            raise ValueError("bad message")
        got.put(value)

    with zhub.Client.connect(broker.url) as client:
        subscription = client.subscribe_with(["cb"], callback)
        client.publish("cb", "bad")
        client.publish("cb", "good")
        assert got.get(timeout=5) == "good"
        subscriber = subscription.unregister()
        subscriber.close()


def test_pipelined_requests_are_matched_by_id(broker):
    with zhub.Client.connect(broker.url) as client:
        ids = [client.send_request_bytes("zhub.info", b"\xc0") for _ in range(5)]
        ids.append(client.send_request_bytes("nosuch", b"", timeout=0.2))
        seen = {}
        while client.in_flight:
            request_id, outcome = client.recv_reply()
            seen[request_id] = outcome
        assert set(seen) == set(ids)
        assert all(isinstance(seen[i], bytes) for i in ids[:5])
        assert isinstance(seen[ids[5]], zhub.RequestError)
        assert seen[ids[5]].kind is RequestErrorKind.NO_SERVICE


def test_a_large_message_comes_in_its_own_frame_and_is_read_whole(broker):
    # Past 2048 bytes the broker sends the bus frame apart from the envelope (delivery.rs).
    with zhub.Client.connect(broker.url) as client:
        sub = client.subscribe("big")
        body = bytes(range(256)) * 64
        client.publish_bytes("big", body)
        client.publish("big", "small after big")
        big = sub.recv(timeout=5)
        assert big is not None and big.body == body and big.seq == 1
        small = sub.recv(timeout=5)
        assert small is not None and small.decode() == "small after big"
        assert sub.malformed == 0


def test_a_subscriber_that_falls_behind_is_told_what_it_missed(tmp_path):
    from conftest import start_broker

    broker = start_broker(tmp_path, "--subscribe-hwm", "10")
    try:
        with zhub.Client.connect(broker.url, subscribe_hwm=10) as client:
            sub = client.subscribe("flood")
            total = 5000
            for i in range(total):
                client.publish("flood", i)
            # The broker reports drops in the next envelope it delivers (or a notice when
            # nothing follows them): read until everything is accounted for.
            # A notice carries no message, so recv goes on waiting after it: short waits.
            got = []
            deadline = time.monotonic() + 10
            while len(got) + sub.missed < total:
                assert time.monotonic() < deadline, f"{len(got)} received, {sub.missed} missed of {total}"
                message = sub.recv(timeout=0.05)
                if message is not None:
                    got.append(message.decode())
            assert sub.missed > 0
            assert len(got) + sub.missed == total
            assert got == sorted(got)
            # Each hole in the sequence numbers is a message the broker counted as missed;
            # so is each message after the last received, which no hole shows.
            assert sub.gaps + (total - 1 - got[-1]) == sub.missed
    finally:
        broker.stop()


def test_a_subscriber_and_a_publisher_come_back_after_a_broker_restart(tmp_path):
    from conftest import start_broker

    first = start_broker(tmp_path)
    with zhub.Client.connect(first.url, timeout=2) as client:
        sub = client.subscribe("r.")
        client.publish("r.x", "before")
        assert sub.recv(timeout=5).decode() == "before"
        first.stop()
        second = start_broker(tmp_path)  # the same ipc paths
        try:
            # ZeroMQ reconnects both sockets and resends the subscriptions; what is published
            # until then is lost, and the sequence numbers show it.
            got = None
            deadline = time.monotonic() + 10
            while got is None:
                assert time.monotonic() < deadline, "the subscription never came back"
                client.publish("r.x", "after")
                got = sub.recv(timeout=0.05)
            assert got.decode() == "after"
            assert sub.gaps == got.seq - 2
            assert client.request("zhub.info", None)["version"]
        finally:
            second.stop()
