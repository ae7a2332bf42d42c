"""Workers: serving, credit, the threaded recv/reply way, Majordomo clients, reconnection."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest
import zmq

from conftest import start_broker

import zhub
from zhub import RequestErrorKind, WorkerErrorKind


@contextmanager
def serving(worker: zhub.Worker, handler: Callable[[bytes], bytes]) -> Iterator[zhub.Worker]:
    """Runs ``worker.run(handler)`` on a thread for the block's length, then stops it and
    checks that ``run`` returned."""
    thread = threading.Thread(target=worker.run, args=(handler,), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=5)
        assert not thread.is_alive(), "run did not return after stop"
        worker.close()


def test_a_worker_answers_requests_until_stopped(broker):
    with serving(zhub.Worker.connect(broker.url, "upper"), bytes.upper) as worker:
        with zhub.Client.connect(broker.url) as client:
            assert client.request_bytes("upper", b"hello") == b"HELLO"
            assert client.request_bytes("upper", b"") == b""
            assert worker.served == 2


def test_close_from_another_thread_waits_for_run_to_return(broker):
    worker = zhub.Worker.connect(broker.url, "closing")
    failures = []

    def serve() -> None:
        try:
            worker.run(lambda body: body)
        except BaseException as e:  # A run cut off by close would raise here.
            failures.append(e)

    thread = threading.Thread(target=serve)
    thread.start()
    with zhub.Client.connect(broker.url) as client:
        assert client.request_bytes("closing", b"up") == b"up"
    worker.close()
    thread.join(5)
    assert not thread.is_alive() and failures == []
    with pytest.raises(zhub.WorkerError) as caught:
        worker.run(lambda body: body)
    assert caught.value.kind is WorkerErrorKind.STOPPED


def test_run_typed_speaks_messagepack(broker):
    worker = zhub.Worker.connect(broker.url, "sum")
    thread = threading.Thread(target=worker.run_typed, args=(lambda xs: {"sum": sum(xs)},), daemon=True)
    thread.start()
    with zhub.Client.connect(broker.url) as client:
        assert client.request("sum", [1, 2, 3]) == {"sum": 6}
    worker.stop()
    thread.join(5)
    worker.close()


def test_a_handler_that_raises_is_a_worker_failure_and_the_worker_goes_on(broker):
    def handler(body: bytes) -> bytes:
        if body == b"boom":
            raise ValueError("no such file: boom")
        return body

    for concurrency in (1, 3):
        name = f"fragile{concurrency}"
        with serving(zhub.Worker.connect(broker.url, name, concurrency=concurrency), handler):
            with zhub.Client.connect(broker.url) as client:
                with pytest.raises(zhub.RequestError) as caught:
                    client.request_bytes(name, b"boom")
                assert caught.value.kind is RequestErrorKind.WORKER_FAILED
                assert "ValueError: no such file: boom" in str(caught.value)
                assert client.request_bytes(name, b"ok") == b"ok"
                # A reported failure is not retried on another worker.
                assert client.stats()["requests"]["requeued"] == 0


def test_fail_answers_a_received_request_with_a_failure(broker):
    with zhub.Worker.connect(broker.url, "picky") as worker:
        with zhub.Client.connect(broker.url) as client:
            sent = client.send_request_bytes("picky", b"bad input")
            request = worker.recv(timeout=5)
            assert request is not None
            worker.fail(request, "cannot parse: bad input")
            request_id, outcome = client.recv_reply()
            assert request_id == sent
            assert isinstance(outcome, zhub.RequestError), outcome
            assert outcome.kind is RequestErrorKind.WORKER_FAILED
            assert "cannot parse: bad input" in str(outcome)
        worker.stop()


def test_credit_lets_a_worker_hold_several_requests_at_once(broker):
    # Four requests that each wait for all four to have arrived: only a worker the broker
    # gives four at once can answer them.
    together = threading.Barrier(4, timeout=5)

    def handler(body: bytes) -> bytes:
        together.wait()
        return body

    with serving(zhub.Worker.connect(broker.url, "wide", concurrency=4), handler):
        with zhub.Client.connect(broker.url) as client:
            ids = {client.send_request_bytes("wide", str(i).encode(), timeout=5): str(i).encode() for i in range(4)}
            while client.in_flight:
                request_id, outcome = client.recv_reply()
                assert outcome == ids[request_id]
            services = {s["name"]: s for s in client.services()}
            assert services["wide"]["workers"] == 1


def test_without_credit_the_same_requests_are_served_one_by_one(broker):
    together = threading.Barrier(2, timeout=0.5)

    def handler(body: bytes) -> bytes:
        try:
            together.wait()
            return b"together"
        except threading.BrokenBarrierError:
            return b"alone"

    with serving(zhub.Worker.connect(broker.url, "narrow"), handler):
        with zhub.Client.connect(broker.url) as client:
            for i in range(2):
                client.send_request_bytes("narrow", b"x", timeout=5)
            outcomes = [client.recv_reply()[1] for _ in range(2)]
            assert b"together" not in outcomes


def test_recv_and_reply_answer_in_any_order(broker):
    with zhub.Worker.connect(broker.url, "later", concurrency=2) as worker:
        with zhub.Client.connect(broker.url) as client:
            first = client.send_request_bytes("later", b"first")
            second = client.send_request_bytes("later", b"second")
            a = worker.recv(timeout=5)
            b = worker.recv(timeout=5)
            assert a is not None and b is not None
            assert {a.body, b.body} == {b"first", b"second"}
            worker.reply(b, b.body.upper())
            worker.reply(a, a.body.upper())
            got = dict(client.recv_reply() for _ in range(2))
            assert got == {first: b"FIRST", second: b"SECOND"}
            assert worker.recv(timeout=0.05) is None
        worker.stop()
        with pytest.raises(zhub.WorkerError) as caught:
            worker.recv(timeout=5)
        assert caught.value.kind is WorkerErrorKind.STOPPED


def test_a_plain_majordomo_client_reaches_a_python_worker(broker):
    with serving(zhub.Worker.connect(broker.url, "echo"), lambda body: body):
        context = zmq.Context()
        req = context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.setsockopt(zmq.RCVTIMEO, 5000)
        req.connect(broker.url)
        req.send_multipart([b"MDPC01", b"echo", b"hello"])
        assert req.recv_multipart() == [b"MDPC01", b"echo", b"hello"]
        req.send_multipart([b"MDPC01", b"mmi.service", b"echo"])
        assert req.recv_multipart() == [b"MDPC01", b"mmi.service", b"200"]
        req.close()
        context.term()


def test_majordomo_client_reaches_a_python_worker_and_asks_mmi(broker):
    with serving(zhub.Worker.connect(broker.url, "mdp.echo"), lambda body: body[::-1]):
        with zhub.MajordomoClient(broker.url, timeout=5) as mdp:
            assert mdp.request("mdp.echo", [b"olleh"]) == [b"hello"]
            assert mdp.has_service("mdp.echo")
            assert not mdp.has_service("mdp.nosuch")
            # MDP answers an unknown service with silence: the client times out, and a new
            # socket keeps a late answer from meeting the next request.
            with pytest.raises(zhub.RequestError) as caught:
                mdp.request("mdp.nosuch", [b"x"], timeout=0.2)
            assert caught.value.kind is RequestErrorKind.TIMED_OUT
            assert mdp.request("mdp.echo", [b"ba"]) == [b"ab"]


def test_a_worker_registers_again_with_a_restarted_broker(tmp_path):
    first = start_broker(tmp_path, "--heartbeat", "100ms")
    worker = zhub.Worker.connect(first.url, "survivor", heartbeat=0.1, reconnect=(0.05, 0.2))
    with serving(worker, lambda body: b"still here"):
        with zhub.Client.connect(first.url) as client:
            assert client.request_bytes("survivor", b"") == b"still here"
        first.stop()
        second = start_broker(tmp_path, "--heartbeat", "100ms")
        try:
            with zhub.Client.connect(second.url) as client:
                # The new broker learns of the worker only when it registers again.
                for _ in range(100):
                    try:
                        assert client.request_bytes("survivor", b"", timeout=0.5) == b"still here"
                        break
                    except zhub.RequestError as e:
                        assert e.kind is RequestErrorKind.NO_SERVICE
                else:
                    pytest.fail("the worker never came back")
        finally:
            second.stop()


def test_options_that_cannot_work_are_refused():
    url = "tcp://127.0.0.1:1"
    for kwargs, kind in [
        ({"heartbeat": 0}, WorkerErrorKind.INVALID_OPTION),
        ({"concurrency": 0}, WorkerErrorKind.INVALID_OPTION),
        ({"concurrency": 1025}, WorkerErrorKind.INVALID_OPTION),
        ({"reconnect": (0, 0)}, WorkerErrorKind.INVALID_OPTION),
    ]:
        with pytest.raises(zhub.WorkerError) as caught:
            zhub.Worker.connect(url, "svc", **kwargs)
        assert caught.value.kind is kind
    for service in ["", "zhub.kv", "mmi.service"]:
        with pytest.raises(zhub.WorkerError) as caught:
            zhub.Worker.connect(url, service)
        assert caught.value.kind is WorkerErrorKind.INVALID_SERVICE
    with pytest.raises(zhub.WorkerError) as caught:
        zhub.Worker.connect("localhost:1", "svc")
    assert caught.value.kind is WorkerErrorKind.INVALID_URL
    zhub.Worker.connect(url, "svc").close()
