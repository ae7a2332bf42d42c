"""Publish/subscribe between Python and the Rust ``zhub`` CLI, both ways."""

from __future__ import annotations

import json

from conftest import read_line

import zhub


def test_python_publishes_and_zhub_sub_prints_it(broker):
    sub = broker.spawn_cli("sub", "py.", "--json")
    try:
        with zhub.Client.connect(broker.url) as client:
            # `zhub sub` says nothing once subscribed: publish until it shows it is (as the
            # clients' own probes do), then the messages under test.
            line = None
            for _ in range(250):
                client.publish("py.warmup", 0)
                line = read_line(sub, 0.02)
                if line:
                    break
            assert line, "zhub sub never received the warm-up"
            client.publish("py.data", {"n": 1, "s": "héllo"})
            client.publish_bytes("py.raw", b"plain text")
            seen = []
            while len(seen) < 2:
                line = read_line(sub, 5)
                assert line, "zhub sub printed nothing"
                message = json.loads(line)
                if message["topic"] != "py.warmup":
                    seen.append(message)
            data, raw = seen
            assert data["topic"] == "py.data" and data["body"] == {"n": 1, "s": "héllo"}
            assert data["header"]["encoding"] == "msgpack"
            assert data["header"]["publisher"] == f"{client.publisher_id:016x}"
            assert raw["topic"] == "py.raw" and raw["body"] == "plain text"
            assert raw["header"]["encoding"] == "raw" and raw["header"]["seq"] == 1
    finally:
        sub.kill()
        sub.wait()


def test_zhub_pub_is_read_by_python(broker):
    with zhub.Client.connect(broker.url) as client:
        sub = client.subscribe("rs.")
        broker.cli("pub", "rs.json", '{"k": [1, 2]}', "--json")
        broker.cli("pub", "rs.text", "just text")
        broker.cli("pub", "rs.lines", input=b"one\ntwo\n")
        got = [sub.recv(timeout=5) for _ in range(4)]
        assert all(got)
        assert (got[0].topic, got[0].decode()) == ("rs.json", {"k": [1, 2]})
        # A plain MESSAGE is a MessagePack string or its bytes, as the CLI's body rules say;
        # either way Python reads the text back through Message.value.
        assert got[1].topic == "rs.text" and got[1].value in (b"just text", "just text")
        assert [m.value for m in got[2:]] in ([b"one", b"two"], ["one", "two"])
        assert len({m.publisher for m in got}) == 3
