"""The shapes PyDistributed users know (the project zhub succeeds), on zhub's planes, so that
their programs port with few changes:

- ``MessageBusClient``: ``subscribe(topic)``, ``publish(topic, value)``, ``receive()``;
- ``KeyValueClient``: ``set(key, value)`` / ``get(key)`` with a ``_client_id`` of its own;
- ``TaskQueueClient`` / ``TaskQueueWorker``: submit a task and wait for the one worker
  (round robin) that answers it;
- ``EventSource``: append events to a stream and replay them;
- ``MessageBusBroker`` (alias ``KeyValueStore``): starts a ``zhub-broker`` process, with
  ``start()``, ``join()`` and ``shutdown()``: the broker is a Rust binary, not a Python
  thread, and one broker serves every plane.

Values are MessagePack, so any of them reads what zhub's Rust clients and CLI write.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import zmq

from . import _wire as wire
from .client import DEFAULT_URL, Client, Message, Subscriber
from .worker import Worker


class MessageBusClient:
    """A pub/sub client: ``subscribe`` to topic prefixes, ``publish`` values, ``receive``
    the next message on any subscribed topic.

    Unlike a bare ZeroMQ subscriber, ``subscribe`` returns once the subscription is live, so
    the ``time.sleep(0.5)`` of the PyDistributed examples is not needed.
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        self.client = Client.connect(url, timeout=timeout)
        """The underlying ``Client``."""
        self._subscribers: list[Subscriber] = []
        self._poller = zmq.Poller()

    def subscribe(self, topic: str) -> None:
        """Receives messages whose topic starts with ``topic`` from now on."""
        subscriber = self.client.subscribe(topic)
        self._subscribers.append(subscriber)
        self._poller.register(subscriber._socket, zmq.POLLIN)

    def publish(self, topic: str, value: Any) -> None:
        """Publishes ``value`` (MessagePack) on ``topic``."""
        self.client.publish(topic, value)

    def receive_message(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message with its topic and header; ``None`` after ``timeout`` seconds
        (``None``: wait as long as it takes)."""
        if not self._subscribers:
            raise RuntimeError("receive before any subscribe")
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for subscriber in self._subscribers:
                message = subscriber.try_recv()
                if message is not None:
                    return message
            if deadline is None:
                wait = 1000
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = max(1, int(left * 1000))
            self._poller.poll(wait)

    def receive(self, timeout: Optional[float] = None) -> Any:
        """The next message's value (decoded when MessagePack); ``None`` after ``timeout``."""
        message = self.receive_message(timeout)
        return None if message is None else message.value

    def close(self) -> None:
        """Closes the connection."""
        self.client.close()


class KeyValueClient:
    """A key-value client: ``set``, ``get``, ``delete`` on zhub's store.

    Keys are strings in zhub; other keys are used as ``str(key)``. ``_client_id`` is an id
    of this client's own, as PyDistributed's clients have one.
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        self.client = Client.connect(url, timeout=timeout)
        """The underlying ``Client``."""
        self._client_id = f"{wire.random_u64():016x}"

    @property
    def client_id(self) -> str:
        """This client's id."""
        return self._client_id

    def set(self, key: Any, value: Any) -> int:
        """Sets ``key`` to ``value`` (MessagePack), durably; returns the change's revision."""
        return self.client.kv.put(str(key), value)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` when absent."""
        return self.client.kv.get(str(key), default)

    def delete(self, key: Any) -> bool:
        """Deletes ``key``; whether it was there."""
        return self.client.kv.delete(str(key)) is not None

    def close(self) -> None:
        """Closes the connection."""
        self.client.close()


class TaskQueueClient:
    """Submits tasks to a named service and waits for the answer of the one worker that
    takes each (workers are served round robin; a task whose worker dies goes to another)."""

    def __init__(self, service: str, url: str = DEFAULT_URL, *, timeout: float = 30.0) -> None:
        self.service = service
        self.client = Client.connect(url, timeout=timeout)
        """The underlying ``Client``."""

    def submit(self, task: Any, timeout: Optional[float] = None) -> Any:
        """Sends ``task`` (MessagePack) and returns the worker's answer. Raises
        ``RequestError`` (``NO_SERVICE``, ``TIMED_OUT``, ``BUSY``, ...)."""
        return self.client.request(self.service, task, timeout=timeout)

    def close(self) -> None:
        """Closes the connection."""
        self.client.close()


class TaskQueueWorker:
    """Serves a task queue: ``run()`` calls ``handler(task) -> answer`` for each task until
    ``stop()``; ``start()`` does so on a thread."""

    def __init__(self, service: str, handler: Callable[[Any], Any], url: str = DEFAULT_URL, *, concurrency: int = 1) -> None:
        self.worker = Worker.connect(url, service, concurrency=concurrency)
        """The underlying ``Worker``."""
        self._handler = handler
        self._thread: Optional[threading.Thread] = None

    def run(self) -> None:
        """Serves on this thread until ``stop``."""
        self.worker.run_typed(self._handler)

    def start(self) -> None:
        """Serves on a thread of its own."""
        self._thread = threading.Thread(target=self.run, name=f"zhub-task-{self.worker.service}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops serving and closes the worker."""
        self.worker.stop()
        if self._thread is not None:
            self._thread.join()
        self.worker.close()


class EventSource:
    """An append-only stream of events (created when missing) that can be replayed from any
    offset, durably (the event log)."""

    def __init__(self, stream: str, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        from .errors import RequestError, RequestErrorKind

        self.stream = stream
        self.client = Client.connect(url, timeout=timeout)
        """The underlying ``Client``."""
        try:
            self.client.log.create(stream)
        except RequestError as e:
            if e.kind is not RequestErrorKind.REJECTED:
                raise

    def emit(self, event: Any) -> int:
        """Appends ``event`` (MessagePack); returns its offset once it is on disk."""
        return self.client.log.append(self.stream, event)

    def replay(self, offset: int = 0) -> Iterator[tuple[int, Any]]:
        """``(offset, event)`` from ``offset`` to the stream's current end."""
        for record in self.client.log.read(self.stream, offset):
            yield record.offset, record.decode()

    def follow(self, offset: Optional[int] = None) -> Iterator[tuple[int, Any]]:
        """``(offset, event)`` as events are appended (from ``offset``, or from this call
        on)."""
        records = self.client.log.tail(self.stream, offset)
        return ((record.offset, record.decode()) for record in records)

    def close(self) -> None:
        """Closes the connection."""
        self.client.close()


class MessageBusBroker:
    """A ``zhub-broker`` process, for programs that start their broker themselves.

    ``binary``: the broker's path (default: ``$ZHUB_BROKER``, else ``zhub-broker`` on the
    PATH). With ``ipc_dir`` its four endpoints are ipc sockets there, and ``url`` names the
    main one; otherwise it takes the default endpoints (``tcp://127.0.0.1:5555`` to 5558).
    ``data_dir`` holds the log and the store (default: a temporary directory).
    """

    def __init__(
        self,
        *,
        binary: Optional[str] = None,
        ipc_dir: Optional[str] = None,
        data_dir: Optional[str] = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        found = binary or os.environ.get("ZHUB_BROKER") or shutil.which("zhub-broker")
        if not found:
            raise FileNotFoundError("zhub-broker: set ZHUB_BROKER or put it on the PATH")
        self._binary = found
        self._temp: Optional[tempfile.TemporaryDirectory] = None
        if data_dir is None:
            self._temp = tempfile.TemporaryDirectory(prefix="zhub-")
            data_dir = self._temp.name
        self._args = ["--data-dir", str(data_dir), *extra_args]
        self.url = DEFAULT_URL
        """The main endpoint clients connect to."""
        if ipc_dir is not None:
            d = Path(ipc_dir)
            self.url = f"ipc://{d / 'main.sock'}"
            for flag, name in [("--listen", "main"), ("--publish", "pub"), ("--subscribe", "sub"), ("--deliver", "deliver")]:
                self._args += [flag, f"ipc://{d / name}.sock"]
        self._process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 10.0) -> None:
        """Starts the broker and returns once its endpoints are bound. Raises
        ``RuntimeError`` when it exits or logs an error first."""
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        process = subprocess.Popen([self._binary, *self._args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        assert process.stderr is not None
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        listening, seen = 0, []
        try:
            while listening < 4:
                line = process.stderr.readline().decode(errors="replace")
                seen.append(line)
                if not line or "ERROR" in line:
                    process.kill()
                    process.wait()
                    raise RuntimeError("zhub-broker did not start: " + "".join(seen))
                listening += "listening" in line
        finally:
            timer.cancel()
        stderr = process.stderr
        threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
        self._process = process

    def join(self, timeout: Optional[float] = None) -> None:
        """Waits until the broker exits."""
        if self._process is not None:
            self._process.wait(timeout)

    def shutdown(self) -> None:
        """Stops the broker cleanly (SIGTERM) and waits for it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._temp is not None:
            self._temp.cleanup()
            self._temp = None

    def __enter__(self) -> "MessageBusBroker":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


KeyValueStore = MessageBusBroker
"""One zhub broker serves the bus and the store alike."""

__all__ = [
    "EventSource",
    "KeyValueClient",
    "KeyValueStore",
    "MessageBusBroker",
    "MessageBusClient",
    "TaskQueueClient",
    "TaskQueueWorker",
]
