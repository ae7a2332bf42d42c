"""``Com``: the communicator of the INFO901 middleware (seed 001), on a zhub process group.

Its methods keep that project's names, so its programs port with few changes:

- asynchronous: ``publish(payload)`` (everyone, this process too), ``broadcast(payload)``
  (everyone else), ``sendTo(payload, to)``;
- synchronous: ``synchronize()`` (a barrier), ``broadcastSync(data, from_id)`` (the sender
  returns once everyone has it; the others return it), ``sendToSync(payload, to)`` meeting
  ``receiveFromSync(from_id)``;
- the critical section: ``requestSC()`` then ``releaseSC()`` (the token ring is the
  broker's);
- the mailbox (BAL): ``receive()`` takes the next message; each carries the sender's id and
  Lamport stamp, and the Lamport clock follows the seed's rules (``clock``).

Ids are ranks by arrival (REGISTER), renumbered when a member goes silent (its heartbeats
are the group's); ``getMyId()`` says this process's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .client import DEFAULT_URL, Client
from .errors import GroupError, GroupErrorKind
from .group import Group, GroupMessage, LockGuard, View


@dataclass(frozen=True)
class ComMessage:
    """A message taken from the mailbox."""

    payload: Any
    """The payload as sent (MessagePack values round-trip)."""
    sender: Optional[int]
    """The sender's id (rank) when the message was received."""
    lamport: int
    """The sender's Lamport stamp."""

    @classmethod
    def of(cls, message: GroupMessage) -> "ComMessage":
        """From a group message."""
        return cls(message.decode(), message.sender_rank, message.lamport)


class Com:
    """A process's communicator: joins the group ``group`` of ``size`` processes at the
    broker ``url`` and returns once all of them are there.

    ``heartbeat`` and ``dead_after`` (seconds) are the group's liveness: a process silent for
    ``dead_after`` leaves the view and the others are renumbered.
    """

    def __init__(
        self,
        size: Optional[int] = None,
        group: str = "com",
        url: str = DEFAULT_URL,
        *,
        heartbeat: float = 0.5,
        dead_after: float = 2.0,
        timeout: float = 60.0,
        _group: Optional[Group] = None,
        _client: Optional[Client] = None,
    ) -> None:
        if _group is not None:
            self.group = _group
            self._client = _client
        else:
            self._client = Client.connect(url)
            try:
                self.group = Group.join(
                    self._client, group, size, heartbeat=heartbeat, dead_after=dead_after, join_timeout=timeout
                )
            except BaseException:
                self._client.close(linger=0)
                raise
        self.timeout = timeout
        """Seconds a synchronous call waits before raising ``GroupError`` (``TIMED_OUT``)."""
        self._sc: Optional[LockGuard] = None

    @classmethod
    def of(cls, group: Group, timeout: float = 60.0) -> "Com":
        """A communicator over a group already joined (its client stays the caller's)."""
        return cls(_group=group, timeout=timeout)

    # --- who is who --------------------------------------------------------------------------

    def getMyId(self) -> int:  # noqa: N802 - the seed's name
        """This process's id: its rank by arrival in the current view."""
        rank = self.group.rank
        if rank is None:
            raise GroupError(GroupErrorKind.EXPELLED, self.group.name)
        return rank

    @property
    def my_id(self) -> int:
        """``getMyId()``."""
        return self.getMyId()

    @property
    def size(self) -> int:
        """Processes in the current view."""
        return self.group.size

    @property
    def view(self) -> View:
        """The current view (members in arrival order)."""
        return self.group.view

    @property
    def clock(self) -> int:
        """The Lamport clock: +1 at each send, max(local, stamp) + 1 at each receive."""
        return self.group.clock

    # --- asynchronous ------------------------------------------------------------------------

    def publish(self, payload: Any) -> int:
        """Sends ``payload`` to every process, this one included; returns its stamp."""
        return self.group.publish(payload)

    def broadcast(self, payload: Any) -> int:
        """Sends ``payload`` to every other process; returns its stamp."""
        return self.group.broadcast(payload)

    def sendTo(self, payload: Any, to: int) -> int:  # noqa: N802 - the seed's name
        """Sends ``payload`` to process ``to``; returns its stamp."""
        return self.group.send_to(to, payload)

    def receive(self, timeout: Optional[float] = None) -> Optional[ComMessage]:
        """The next message in the mailbox; ``None`` after ``timeout`` seconds (``None``:
        wait for one)."""
        message = self.group.recv(timeout)
        return None if message is None else ComMessage.of(message)

    # --- synchronous -------------------------------------------------------------------------

    def synchronize(self, n: Optional[int] = None) -> None:
        """A barrier: returns once every process of the view has called it too. ``n`` (the
        seed's process count) is the view's size; it is accepted and checked."""
        if n is not None and n != self.size:
            raise GroupError(GroupErrorKind.BAD_REQUEST, f"synchronize({n}) in a view of {self.size}")
        self.group.barrier(self.timeout)

    def broadcastSync(self, data: Any, from_id: int, my_id: Optional[int] = None) -> Any:  # noqa: N802
        """Called by every process: process ``from_id`` sends ``data`` to all others and
        returns once each has it; every other process returns the next payload in its
        mailbox from ``from_id`` (that one, when ``from_id`` sent nothing else meanwhile).
        ``my_id``, the seed's third argument, is taken from the view."""
        if self.getMyId() == from_id:
            self.group.broadcast_sync(data, self.timeout)
            return data
        sender = self.group.view.members[from_id]
        message = self.group.recv(self.timeout, sender=sender)
        if message is None:
            raise GroupError(GroupErrorKind.TIMED_OUT, f"broadcastSync from {from_id}")
        return message.decode()

    def sendToSync(self, payload: Any, to: int, my_id: Optional[int] = None) -> int:  # noqa: N802
        """Sends ``payload`` to process ``to`` and returns once ``to`` has taken it with
        ``receiveFromSync``: a rendezvous."""
        return self.group.send_to_sync(to, payload, self.timeout)

    def receiveFromSync(self, from_id: int, timeout: Optional[float] = None) -> Any:  # noqa: N802
        """Takes the payload process ``from_id`` sends with ``sendToSync``, releasing it."""
        return self.group.recv_from_sync(from_id, self.timeout if timeout is None else timeout).decode()

    # --- the critical section ----------------------------------------------------------------

    def requestSC(self) -> None:  # noqa: N802 - the seed's name
        """Waits for the token: this process is in the critical section until ``releaseSC``."""
        if self._sc is not None:
            raise GroupError(GroupErrorKind.BAD_REQUEST, "requestSC while holding the token")
        self._sc = self.group.lock(self.timeout)

    def releaseSC(self) -> None:  # noqa: N802 - the seed's name
        """Leaves the critical section and passes the token on."""
        if self._sc is not None:
            self._sc.unlock()
            self._sc = None

    # --- the end -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Leaves the group (releasing the token if held) and closes the connection."""
        self.releaseSC()
        self.group.leave()
        if self._client is not None:
            self._client.close(linger=0.5)
            self._client = None

    def __enter__(self) -> "Com":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Com", "ComMessage"]
