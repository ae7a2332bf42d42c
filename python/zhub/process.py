"""``Process`` and ``ProcessManager``: the event-bus middleware's shapes (seed 000), on a zhub
process group.

Subclass ``Process``, give ``process(message_box)`` the reaction to each message, and start
N of them with ``ProcessManager().add_process(n, MyProcess, **params)``::

    class MyProcess(zhub.Process):
        def __init__(self, process_id, bus_size, greeting):
            super().__init__(process_id, bus_size)
            self.greeting = greeting

        def on_start(self):
            self.com.broadcast(f"{self.greeting} from {self.process_id}")

        def process(self, message_box):
            print(self.process_id, "got", message_box.payload, "from", message_box.sender)

    manager = zhub.ProcessManager("tcp://127.0.0.1:5555")
    manager.add_process(5, MyProcess, greeting="hello")
    manager.stop_process()

Each process runs on a thread of its own with a connection and a group membership of its
own; ``self.com`` is its ``Com`` (``publish``, ``broadcast``, ``sendTo``, ``synchronize``,
``requestSC``/``releaseSC``, ...). The n processes of one ``add_process`` form one group and
their ``process_id`` is their rank in it (0..n-1).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from . import _wire as wire
from .client import DEFAULT_URL, Client
from .com import Com, ComMessage
from .group import Group

log = logging.getLogger("zhub.process")


class Process:
    """One process of the bus; subclass it and implement ``process``."""

    def __init__(self, process_id: int, bus_size: int) -> None:
        self.process_id = process_id
        """This process's id: its rank in its group, 0..bus_size-1."""
        self.bus_size = bus_size
        """How many processes the group holds."""
        self.com: Com
        """The communicator, set by the manager before ``on_start``."""
        self._stopping = threading.Event()

    def on_start(self) -> None:
        """Called once every process of the group is there, before any ``process``: where a
        process sends its first messages. Does nothing by default."""

    def process(self, message_box: ComMessage) -> None:
        """Called for each new message (``payload``, ``sender``, ``lamport``), in the order
        they arrive. Does nothing by default."""

    def run(self) -> None:
        """The process's life: ``on_start``, then ``process`` for each message until
        ``stop``. Override it for a process that drives itself."""
        self.on_start()
        while not self._stopping.is_set():
            message = self.com.receive(timeout=0.1)
            if message is not None:
                self.process(message)

    @property
    def stopping(self) -> bool:
        """Whether the manager asked this process to stop (for a ``run`` of one's own)."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Asks ``run`` to return."""
        self._stopping.set()


class ProcessManager:
    """Starts processes on the broker at ``url`` and stops them."""

    def __init__(self, url: str = DEFAULT_URL, *, heartbeat: float = 0.5, dead_after: float = 2.0) -> None:
        self.url = url
        self._heartbeat = heartbeat
        self._dead_after = dead_after
        self._running: list[tuple[Process, threading.Thread, Client]] = []
        self.errors: list[BaseException] = []
        """What processes' ``run`` raised (each is also logged)."""

    def add_process(self, n: int, cls: type, **params: Any) -> list[Process]:
        """Starts ``n`` processes ``cls(process_id, bus_size=n, **params)`` as one group and
        returns them once all have joined and started."""
        name = f"processes-{wire.random_u64():016x}"
        joined: list[tuple[Process, Group, Client]] = []
        try:
            # One at a time, so that arrival order (the rank) is the process id.
            for i in range(n):
                client = Client.connect(self.url)
                group = Group.join(client, name, heartbeat=self._heartbeat, dead_after=self._dead_after)
                joined.append((cls(i, n, **params), group, client))
            for _, group, _ in joined:
                while group.size < n:
                    if group.wait_view(group.view.version, 10) is None:
                        raise TimeoutError(f"group {name} did not reach {n} processes")
        except BaseException:
            for _, group, client in joined:
                group.leave()
                client.close(linger=0)
            raise
        started = []
        for process, group, client in joined:
            process.com = Com.of(group)
            thread = threading.Thread(target=self._run, args=(process,), name=f"zhub-process-{process.process_id}", daemon=True)
            self._running.append((process, thread, client))
            started.append(process)
        for process, thread, _ in self._running[-n:]:
            thread.start()
        return started

    def _run(self, process: Process) -> None:
        try:
            process.run()
        except BaseException as e:
            log.exception("process %d failed", process.process_id)
            self.errors.append(e)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits until every process's ``run`` has returned; whether they all have."""
        for _, thread, _ in self._running:
            thread.join(timeout)
        return not any(thread.is_alive() for _, thread, _ in self._running)

    def stop_process(self) -> None:
        """Stops every process, then leaves their groups and closes their connections."""
        for process, _, _ in self._running:
            process.stop()
        for process, thread, client in self._running:
            thread.join()
            process.com.stop()
            client.close(linger=0.5)
        self._running.clear()


__all__ = ["Process", "ProcessManager"]
