"""Requests between Python and the Rust ``zhub`` CLI: a Python worker answering
``zhub request``, and a Python client calling a ``zhub serve`` worker."""

from __future__ import annotations

import json
import threading

from conftest import request_when_served

import zhub


def serve_in_thread(worker: zhub.Worker, handler) -> threading.Thread:
    thread = threading.Thread(target=worker.run, args=(handler,), daemon=True)
    thread.start()
    return thread


def test_zhub_request_reaches_a_python_worker(broker):
    worker = zhub.Worker.connect(broker.url, "py.upper")
    thread = serve_in_thread(worker, bytes.upper)
    try:
        with zhub.Client.connect(broker.url) as client:
            # Registered once the broker routes a request to it.
            assert request_when_served(client, "py.upper", b"ready") == b"READY"
        plain = broker.cli("request", "py.upper", "hello from rust")
        assert plain.stdout.strip() == b"HELLO FROM RUST"
        missing = broker.cli("request", "py.nosuch", "x", "--timeout", "300ms", check=False)
        assert missing.returncode != 0
    finally:
        worker.stop()
        thread.join(5)
        worker.close()


def test_zhub_request_msgpack_reaches_a_typed_python_worker(broker):
    worker = zhub.Worker.connect(broker.url, "py.sum")
    thread = threading.Thread(target=worker.run_typed, args=(lambda v: {"sum": sum(v["xs"])},), daemon=True)
    thread.start()
    try:
        with zhub.Client.connect(broker.url) as client:
            request_when_served(client, "py.sum", zhub._wire.encode_body({"xs": []}))
        out = broker.cli("request", "py.sum", '{"xs": [1, 2, 39]}', "--msgpack")
        assert json.loads(out.stdout) == {"sum": 42}
    finally:
        worker.stop()
        thread.join(5)
        worker.close()


def test_a_python_client_calls_zhub_serve(broker):
    serve = broker.spawn_cli("serve", "--echo", "rs.echo")
    try:
        with zhub.Client.connect(broker.url) as client:
            assert request_when_served(client, "rs.echo", b"hello from python") == b"hello from python"
            assert client.request_bytes("rs.echo", bytes(range(256))) == bytes(range(256))
    finally:
        serve.kill()
        serve.wait()


def test_a_python_client_calls_zhub_serve_exec(broker):
    serve = broker.spawn_cli("serve", "--exec", "tr a-z A-Z", "rs.tr")
    try:
        with zhub.Client.connect(broker.url) as client:
            assert request_when_served(client, "rs.tr", b"shout") == b"SHOUT"
    finally:
        serve.kill()
        serve.wait()
