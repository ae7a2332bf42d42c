"""``Worker``: receive requests for a named service and reply to them.

Mirrors the Rust ``zhub_worker`` crate (``worker/src/worker.rs``, ``io.rs``, ``pool.rs``): a
Majordomo (7/MDP 0.1) worker session that registers with READY, heartbeats, notices a
silent broker and reconnects with backoff (the ZeroMQ guide's Paranoid Pirate). It works
with any Majordomo broker; with a zhub broker it may also hold credit: ``concurrency=N``
sends READY with credit N, and the broker keeps up to N requests in flight to it.

Three ways to serve, as in Rust:

- ``run(handler)`` with ``concurrency=1``: the session loop runs on the caller's thread and
  calls ``handler(body) -> reply`` for each request;
- ``run(handler)`` with ``concurrency=N``: the loop hands requests to N handler threads,
  whose replies come back in any order;
- ``recv()`` / ``reply(request, body)``: the loop runs on a background thread that keeps
  heartbeating while the application works on a request for as long as it likes.

A handler that raises is logged and its request answered with a failure: the client gets a
``WORKER_FAILED`` error carrying the exception, and the broker does not retry the request
(the worker did run it). ``fail(request, reason)`` does the same from ``recv``. Failure is a
zhub extension of Majordomo (the FAILED command, ``0x06``, see ``zhub_protocol::mdp``); a
plain Majordomo client gets no answer and sees its own timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Optional, Sequence

import zmq

from . import _wire as wire
from .client import DEFAULT_URL, Curve, Plain, login_of, valid_url
from .errors import WorkerError, WorkerErrorKind

log = logging.getLogger("zhub.worker")

_REQUEST_MARK = b"R"

Handler = Callable[[bytes], bytes]


class _Failed:
    """A handler's failure, to be answered with FAILED rather than a reply."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Request:
    """A request handed to the application by ``Worker.recv``; answer it with
    ``Worker.reply``."""

    __slots__ = ("client", "frames")

    def __init__(self, client: bytes, frames: list[bytes]) -> None:
        self.client = client
        """The opaque client address the reply must echo."""
        self.frames = frames
        """Every body frame."""

    @property
    def body(self) -> bytes:
        """The first body frame (empty when there is none)."""
        return self.frames[0] if self.frames else b""

    def decode(self) -> Any:
        """The body decoded as MessagePack (what ``Client.request`` sends)."""
        return wire.decode_body(self.body)

    def __repr__(self) -> str:
        return f"Request(client={self.client.hex()}, body_len={len(self.body)})"


def _millis(seconds: float) -> int:
    return max(0, int(seconds * 1000 + 0.999))


class Worker:
    """A worker for one service; make it with ``Worker.connect``.

    ``stop()`` may be called from any thread: ``run`` then returns after telling the broker
    DISCONNECT.
    """

    def __init__(
        self,
        url: str,
        service: str,
        heartbeat: float,
        liveness: int,
        reconnect: tuple[float, float],
        concurrency: int,
        login: Optional[Curve | Plain] = None,
    ) -> None:
        """Use ``Worker.connect``."""
        self._login = login
        self._url = url
        self._service = service
        self._heartbeat = heartbeat
        self._liveness = max(1, liveness)
        self._reconnect_min, self._reconnect_max = reconnect[0], max(reconnect)
        self._concurrency = concurrency
        self._context = zmq.Context()
        tag = wire.pid_tag()
        self._stop_endpoint = f"inproc://zhub-worker-stop-{tag}"
        self._app_endpoint = f"inproc://zhub-worker-app-{tag}"
        self._stop_rx = self._context.socket(zmq.PULL)
        self._stop_rx.setsockopt(zmq.LINGER, 0)
        self._stop_rx.bind(self._stop_endpoint)
        self._app: Optional[zmq.Socket] = None
        self._io: Optional[threading.Thread] = None
        self._io_error: Optional[BaseException] = None
        self._closed = False
        # Held while run() serves, so that close() from another thread can wait for it.
        self._serving = threading.Lock()
        self.served = 0
        """Replies sent (each counted just before it goes out)."""

    @classmethod
    def connect(
        cls,
        url: str = DEFAULT_URL,
        service: str = "",
        *,
        heartbeat: float = 2.5,
        liveness: int = 3,
        reconnect: tuple[float, float] = (1.0, 32.0),
        concurrency: int = 1,
        curve: Optional[Curve] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
    ) -> "Worker":
        """A worker for ``service`` at the broker whose main endpoint is ``url``.

        ``heartbeat``: seconds between heartbeats, matching the broker's ``--heartbeat``
        (2.5). ``liveness``: heartbeats without a word from the broker before reconnecting
        (3). ``reconnect``: the backoff's first and longest wait in seconds (1, 32).
        ``concurrency``: requests taken at once, the READY credit (1, up to 1024).
        ``curve``: a ``Curve`` login, for a broker whose auth file sets ``[curve]``; or
        ``user`` and ``password``, a password login (none); a refused login makes the worker
        retry with its backoff.

        Nothing is sent until the worker serves (``run`` or ``recv``). Raises
        ``WorkerError`` for a bad URL, service name or option.
        """
        if not valid_url(url):
            raise WorkerError(WorkerErrorKind.INVALID_URL, repr(url))
        why = wire.check_service(service)
        if why:
            raise WorkerError(WorkerErrorKind.INVALID_SERVICE, f"{service!r}: {why}")
        if service.startswith("zhub.") or service.startswith("mmi."):
            raise WorkerError(WorkerErrorKind.INVALID_SERVICE, f"{service!r} is reserved for the broker")
        if not 0.01 <= heartbeat <= 3600:
            raise WorkerError(WorkerErrorKind.INVALID_OPTION, f"heartbeat {heartbeat}s: allowed 0.01..=3600")
        if not all(0.001 <= r <= 3600 for r in reconnect):
            raise WorkerError(WorkerErrorKind.INVALID_OPTION, f"reconnect {reconnect}: allowed 0.001..=3600 s")
        if not 1 <= concurrency <= wire.MAX_CREDIT:
            raise WorkerError(
                WorkerErrorKind.INVALID_OPTION, f"concurrency {concurrency}: allowed 1..={wire.MAX_CREDIT}"
            )
        login = login_of(curve, user, password)
        return cls(url, service, heartbeat, liveness, reconnect, concurrency, login)

    @property
    def service(self) -> str:
        """The service served."""
        return self._service

    @property
    def concurrency(self) -> int:
        """The credit this worker asks for."""
        return self._concurrency

    def stop(self) -> None:
        """Makes ``run`` return (and ``recv`` raise ``STOPPED``); safe from any thread."""
        if self._closed:
            return
        socket = self._context.socket(zmq.PUSH)
        try:
            socket.setsockopt(zmq.LINGER, 100)
            socket.connect(self._stop_endpoint)
            try:
                socket.send(b"stop", zmq.NOBLOCK)
            except zmq.Again:
                pass  # A stop is already queued.
        finally:
            socket.close()

    def close(self) -> None:
        """Stops serving (waiting for a ``run`` on another thread to return) and releases the
        worker's sockets and context."""
        if self._closed:
            return
        if self._io is not None:
            self.stop()
            self._io.join()
        if self._serving.locked():
            self.stop()
        with self._serving:
            pass
        self._closed = True
        if self._app is not None:
            self._app.close(0)
        self._stop_rx.close(0)
        self._context.term()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the session -------------------------------------------------------------------------

    def _connect(self) -> zmq.Socket:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if self._login is not None:
            self._login.apply(socket)
        socket.connect(self._url)
        # A DEALER queues this until the connection is up.
        socket.send_multipart([b"", *wire.encode_ready(self._service, self._concurrency)])
        return socket

    def _serve(
        self,
        app: Optional[zmq.Socket],
        on_request: Callable[[bytes, list[bytes]], "Optional[list[bytes] | _Failed]"],
    ) -> None:
        """The session loop: until something arrives on the stop socket. ``on_request``
        answers at once (frames, or a failure) or later over ``app`` (``None``), where
        ``[client, body...]`` is a reply and ``[b"", client, reason]`` a failure (no client
        address is empty)."""
        heartbeat = self._heartbeat
        broker = self._connect()
        liveness = self._liveness
        backoff = self._reconnect_min
        next_heartbeat = time.monotonic() + heartbeat
        poller = zmq.Poller()
        poller.register(broker, zmq.POLLIN)
        poller.register(self._stop_rx, zmq.POLLIN)
        if app is not None:
            poller.register(app, zmq.POLLIN)
        try:
            while True:
                wait = max(0.0, next_heartbeat - time.monotonic())
                ready = dict(poller.poll(_millis(wait)))
                if self._stop_rx in ready:
                    self._stop_rx.recv()
                    _send(broker, [wire.MDP_WORKER, wire.MDP_DISCONNECT])
                    return
                from_broker = broker in ready
                reconnect = False
                if from_broker:
                    while True:
                        try:
                            frames = broker.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        liveness = self._liveness
                        backoff = self._reconnect_min
                        rest = frames[1:] if frames and frames[0] == b"" else frames
                        if len(rest) < 2 or rest[0] != wire.MDP_WORKER:
                            log.warning("malformed message from broker ignored")
                            continue
                        command = rest[1]
                        if command == wire.MDP_REQUEST and len(rest) >= 4 and rest[3] == b"":
                            client, body = rest[2], rest[4:]
                            reply = on_request(client, body)
                            if isinstance(reply, _Failed):
                                _send(broker, [wire.MDP_WORKER, wire.MDP_FAILED, client, b"", reply.reason.encode()])
                            elif reply is not None:
                                # Counted before the send, so that whoever got the reply sees it.
                                self.served += 1
                                _send(broker, [wire.MDP_WORKER, wire.MDP_REPLY, client, b"", *reply])
                        elif command == wire.MDP_HEARTBEAT:
                            pass
                        elif command == wire.MDP_DISCONNECT:
                            log.info("broker asked to reconnect: service=%s", self._service)
                            reconnect = True
                        else:
                            log.debug("unexpected command from broker ignored: %r", command)
                if app is not None and app in ready:
                    while True:
                        try:
                            frames = app.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if len(frames) == 3 and frames[0] == b"":
                            _send(broker, [wire.MDP_WORKER, wire.MDP_FAILED, frames[1], b"", frames[2]])
                        elif frames:
                            self.served += 1
                            _send(broker, [wire.MDP_WORKER, wire.MDP_REPLY, frames[0], b"", *frames[1:]])
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + heartbeat
                    _send(broker, [wire.MDP_WORKER, wire.MDP_HEARTBEAT])
                    if not from_broker:
                        liveness -= 1
                        if liveness <= 0:
                            log.warning("broker silent; reconnecting in %.3fs: service=%s", backoff, self._service)
                            # Wait out the backoff, still answering a stop at once.
                            if self._stop_rx.poll(_millis(backoff), zmq.POLLIN):
                                self._stop_rx.recv()
                                return
                            backoff = min(backoff * 2, self._reconnect_max)
                            reconnect = True
                if reconnect:
                    poller.unregister(broker)
                    broker.close(0)
                    broker = self._connect()
                    poller.register(broker, zmq.POLLIN)
                    liveness = self._liveness
                    next_heartbeat = time.monotonic() + heartbeat
        finally:
            broker.close(0)

    # --- serving -----------------------------------------------------------------------------

    def run(self, handler: Handler) -> None:
        """Serves requests with ``handler(body) -> reply`` (bytes) until ``stop``; on
        ``concurrency`` threads when it is above 1."""
        if self._io is not None:
            raise WorkerError(WorkerErrorKind.STOPPED, "this worker already serves through recv/reply")
        if self._closed:
            raise WorkerError(WorkerErrorKind.STOPPED)
        with self._serving:
            self._run(handler)

    def _run(self, handler: Handler) -> None:
        def answer(body: list[bytes]) -> "list[bytes] | _Failed":
            try:
                return [bytes(handler(body[0] if body else b""))]
            except Exception as e:
                log.exception("handler failed; failure answered: service=%s", self._service)
                return _Failed(f"{type(e).__name__}: {e}")

        if self._concurrency == 1:
            self._serve(None, lambda client, body: answer(body))
            return
        self._run_pool(answer)

    def _run_pool(self, answer: Callable[[list[bytes]], "list[bytes] | _Failed"]) -> None:
        # Replies come back on a PULL socket: each handler thread has a PUSH of its own, as a
        # socket belongs to one thread.
        endpoint = f"inproc://zhub-worker-pool-{wire.pid_tag()}"
        replies = self._context.socket(zmq.PULL)
        replies.setsockopt(zmq.LINGER, 0)
        replies.bind(endpoint)
        work: "queue.Queue[Optional[tuple[bytes, list[bytes]]]]" = queue.Queue()

        def handler_thread() -> None:
            push = self._context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(endpoint)
            try:
                while True:
                    item = work.get()
                    if item is None:
                        return
                    client, body = item
                    outcome = answer(body)
                    if isinstance(outcome, _Failed):
                        push.send_multipart([b"", client, outcome.reason.encode()])
                    else:
                        push.send_multipart([client, *outcome])
            finally:
                push.close(0)

        threads = [
            threading.Thread(target=handler_thread, name=f"zhub-worker-{self._service}-{i}", daemon=True)
            for i in range(self._concurrency)
        ]
        for t in threads:
            t.start()

        def dispatch(client: bytes, body: list[bytes]) -> None:
            work.put((client, body))
            return None

        try:
            self._serve(replies, dispatch)
        finally:
            for _ in threads:
                work.put(None)
            for t in threads:
                t.join()
            replies.close(0)

    def run_typed(self, handler: Callable[[Any], Any]) -> None:
        """``run`` with MessagePack bodies: ``handler(value) -> value``. A request that is
        not MessagePack is answered with an empty body and logged."""

        def raw(body: bytes) -> bytes:
            return wire.encode_body(handler(wire.decode_body(body)))

        self.run(raw)

    def _threaded(self) -> zmq.Socket:
        if self._closed:
            raise WorkerError(WorkerErrorKind.STOPPED)
        if self._app is None:
            app = self._context.socket(zmq.PAIR)
            app.setsockopt(zmq.LINGER, 0)
            app.bind(self._app_endpoint)
            io_app = self._context.socket(zmq.PAIR)
            io_app.setsockopt(zmq.LINGER, 0)
            io_app.connect(self._app_endpoint)

            def forward(client: bytes, body: list[bytes]) -> None:
                io_app.send_multipart([_REQUEST_MARK, client, *body])
                return None

            def io() -> None:
                try:
                    self._serve(io_app, forward)
                except BaseException as e:  # Reported to the application by recv.
                    self._io_error = e
                finally:
                    io_app.close(0)

            self._app = app
            self._io = threading.Thread(target=io, name=f"zhub-worker-{self._service}", daemon=True)
            self._io.start()
        return self._app

    def recv(self, timeout: Optional[float] = None) -> Optional[Request]:
        """The next request, serving from a background thread; ``None`` after ``timeout``
        seconds (``None``: wait as long as it takes). Raises ``WorkerError`` (``STOPPED``)
        once the worker was stopped."""
        app = self._threaded()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            assert self._io is not None
            if not self._io.is_alive():
                raise WorkerError(WorkerErrorKind.STOPPED, str(self._io_error or ""))
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            # Wake at least every 100 ms to notice an I/O thread that ended.
            if app.poll(_millis(max(0.0, left)), zmq.POLLIN):
                frames = app.recv_multipart()
                if len(frames) >= 2 and frames[0] == _REQUEST_MARK:
                    return Request(frames[1], frames[2:])
            elif deadline is not None and time.monotonic() >= deadline:
                return None

    def reply(self, request: Request, body: bytes) -> None:
        """Answers ``request`` (from ``recv``) with ``body``; in any order when the worker
        has credit above 1."""
        self.reply_frames(request, [body])

    def reply_frames(self, request: Request, body: Sequence[bytes]) -> None:
        """Answers ``request`` with several body frames."""
        self._threaded().send_multipart([request.client, *body])

    def fail(self, request: Request, reason: str) -> None:
        """Answers ``request`` with a failure: the client gets a ``WORKER_FAILED`` error
        carrying ``reason``, and the broker does not retry it (this worker did run it)."""
        self._threaded().send_multipart([b"", request.client, reason.encode()])


def _send(socket: zmq.Socket, frames: list[bytes]) -> None:
    try:
        socket.send_multipart([b"", *frames], zmq.NOBLOCK)
    except zmq.Again:
        pass  # The connection's queue is full: a heartbeat or reply lost like on the wire.
