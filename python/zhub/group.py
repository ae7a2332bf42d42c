"""``Group``: a process group through the broker (``zhub.group``): ranks by arrival, views
that change when members come, leave or die, a mailbox, barriers, synchronous sends and a
token-ring critical section.

Mirrors ``client/src/group/`` and speaks ``protocol/src/group.rs``: membership requests to
the ``zhub.group`` service, and members' messages as MessagePack ``GroupFrame`` maps on the
bus topics ``$zhub.group.NAME.all`` and ``$zhub.group.NAME.m.ID``, so that Python and Rust
members share one group.

A member runs two threads of its own: its heartbeats (which also follow the view) and its
mailbox, which subscribes before the join, so nothing sent to the member after it joined is
lost however late it calls ``recv``. Each thread has a connection of its own, a sibling of
the client given to ``join`` (close the group before that client).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from . import _wire as wire
from .errors import GroupError, GroupErrorKind, RequestError, RequestErrorKind

if TYPE_CHECKING:
    from .client import Client, Message, Subscription

log = logging.getLogger("zhub.group")

GROUP_SERVICE = "zhub.group"
"""The group service's name."""

TOPIC_PREFIX = "$zhub.group."
"""Prefix of every group's bus topics."""

LAUNCH_GROUP = "ZHUB_GROUP"
"""Environment variable a launcher (``zhub launch``) names the group in."""
LAUNCH_SIZE = "ZHUB_GROUP_SIZE"
"""Environment variable a launcher gives the group's size in."""
LAUNCH_MEMBER = "ZHUB_GROUP_MEMBER"
"""Environment variable a launcher gives the member's id in (hexadecimal)."""


def all_topic(group: str) -> str:
    """The topic of messages to every member of ``group``."""
    return f"{TOPIC_PREFIX}{group}.all"


def member_topic(group: str, member: int) -> str:
    """The topic of messages to one member of ``group``."""
    return f"{TOPIC_PREFIX}{group}.m.{member:016x}"


@dataclass(frozen=True)
class View:
    """The live members of a group, in arrival order: a member's rank is its index."""

    group: str
    version: int
    members: tuple[int, ...]

    def rank_of(self, member: int) -> Optional[int]:
        """The rank of ``member``, if it is in the view."""
        try:
            return self.members.index(member)
        except ValueError:
            return None

    @property
    def size(self) -> int:
        """Members in the view."""
        return len(self.members)

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> "View":
        """From the reply's map."""
        return cls(m["group"], m["version"], tuple(m["members"]))


@dataclass(frozen=True)
class GroupMessage:
    """A message from a member (this one included), as ``Group.recv`` returns it."""

    sender: int
    """The sender's member id."""
    sender_rank: Optional[int]
    """The sender's rank in the view current when the message was received."""
    lamport: int
    """The sender's Lamport clock for this send (its stamp)."""
    body: bytes
    """The payload."""

    def decode(self) -> Any:
        """The payload decoded as MessagePack (what the typed sends write)."""
        return wire.decode_body(self.body)


@dataclass
class _Received:
    sender: int
    lamport: int
    body: bytes
    sync: Optional[dict[str, Any]]


@dataclass
class _State:
    view: View = field(default_factory=lambda: View("", 0, ()))
    expelled: bool = False
    mailbox: deque = field(default_factory=deque)
    rendezvous: deque = field(default_factory=deque)
    acks: dict[int, set[int]] = field(default_factory=dict)
    barriers: dict[int, set[int]] = field(default_factory=dict)
    malformed: int = 0


def _request_failed(e: RequestError, what: str) -> GroupError:
    kinds = {
        RequestErrorKind.TIMED_OUT: GroupErrorKind.TIMED_OUT,
        RequestErrorKind.BAD_REQUEST: GroupErrorKind.BAD_REQUEST,
        RequestErrorKind.TOO_LARGE: GroupErrorKind.BAD_REQUEST,
        RequestErrorKind.REJECTED: GroupErrorKind.REJECTED,
        RequestErrorKind.CODEC: GroupErrorKind.CODEC,
        # A broker without the group service does not speak this protocol.
        RequestErrorKind.PROTOCOL: GroupErrorKind.PROTOCOL,
        RequestErrorKind.NO_SERVICE: GroupErrorKind.PROTOCOL,
    }
    error = GroupError(kinds.get(e.kind, GroupErrorKind.TRANSPORT), f"{what}: {e}")
    error.__cause__ = e
    return error


def _call(client: "Client", request: dict[str, Any], timeout: float, what: str) -> dict[str, Any]:
    try:
        reply = client.call_builtin(GROUP_SERVICE, request, timeout)
    except RequestError as e:
        raise _request_failed(e, what) from e
    if not isinstance(reply, dict) or "result" not in reply:
        raise GroupError(GroupErrorKind.PROTOCOL, f"unexpected reply to {what}")
    return reply


def _send_frame(client: "Client", topic: str, frame: dict[str, Any]) -> None:
    from .errors import PublishError

    try:
        client.publish_reserved(topic, wire.encode_body(frame))
    except PublishError as e:
        raise GroupError(GroupErrorKind.TRANSPORT, "send") from e


class Group:
    """This process's membership of a group; make it with ``Group.join``. ``leave`` (or
    leaving the ``with`` block) ends it."""

    def __init__(self) -> None:
        """Use ``Group.join``."""
        self.name = ""
        self.member_id = 0
        self._state = _State()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._clock = wire.LamportClock()
        self._barrier_round = 0
        self._client: Optional["Client"] = None
        self._acker: Optional["Client"] = None
        self._mailbox: Optional["Subscription"] = None
        self._thread: Optional[threading.Thread] = None
        self._heartbeat = 0.5
        self._dead_after = 2.0

    # --- joining -----------------------------------------------------------------------------

    @classmethod
    def join(
        cls,
        client: "Client",
        name: str,
        size: Optional[int] = None,
        *,
        heartbeat: float = 0.5,
        dead_after: float = 2.0,
        join_timeout: float = 60.0,
        member_id: Optional[int] = None,
    ) -> "Group":
        """Joins ``name`` through ``client``'s broker and returns once the group has ``size``
        members (at once without a size), with this member's rank in ``rank``. Ranks are
        0..N-1 in the order the broker saw the joins, the same for every member.

        ``heartbeat``: seconds between this member's heartbeats (0.5); ``dead_after``: the
        silence after which the broker counts it dead (2, more than ``heartbeat``).

        Raises ``GroupError`` (``TIMED_OUT`` when the group does not fill within
        ``join_timeout``, ``BAD_REQUEST`` for a name the broker refuses, ``INVALID_OPTION``).
        """
        if heartbeat <= 0 or dead_after <= heartbeat:
            raise GroupError(
                GroupErrorKind.INVALID_OPTION,
                f"heartbeat {heartbeat}s and dead_after {dead_after}s: need 0 < heartbeat < dead_after",
            )
        why = wire.check_topic(name) if len(name.encode()) <= 200 else "longer than 200 bytes"
        if why:
            raise GroupError(GroupErrorKind.BAD_REQUEST, f"group {name!r}: {why}")
        group = cls()
        group.name = name
        group.member_id = wire.random_u64() if member_id is None else member_id
        group._heartbeat, group._dead_after = heartbeat, dead_after
        own = client.sibling()
        group._client = client.sibling()
        group._acker = client.sibling()
        try:
            # The mailbox is live before the join: whoever sees this member in a view can
            # reach it.
            topics = [all_topic(name), member_topic(name, group.member_id)]
            group._mailbox = group._client.subscribe_with(topics, group._deliver)
            request = {
                "op": "join",
                "group": name,
                "member": group.member_id,
                "expected": size,
                "dead_after_ms": int(dead_after * 1000),
            }
            reply = _call(own, request, join_timeout, "join")
            if reply["result"] != "view":
                raise GroupError(GroupErrorKind.PROTOCOL, f"unexpected reply to join: {reply}")
            group._update(View.from_wire(reply["view"]), False)
        except BaseException:
            group._close_sockets()
            own.close(linger=0)
            raise
        group._thread = threading.Thread(target=group._heartbeats, args=(own,), name="zhub-group", daemon=True)
        group._thread.start()
        return group

    @classmethod
    def join_launched(cls, client: "Client", **options: Any) -> Optional["Group"]:
        """Joins the group a launcher (``zhub launch``) made this process part of, as its
        environment says (``ZHUB_GROUP``, ``ZHUB_GROUP_SIZE``, ``ZHUB_GROUP_MEMBER``);
        ``None`` when the process was not started by a launcher."""
        name = os.environ.get(LAUNCH_GROUP)
        if name is None:
            return None
        try:
            size = os.environ.get(LAUNCH_SIZE)
            member = os.environ.get(LAUNCH_MEMBER)
            return cls.join(
                client,
                name,
                None if size is None else int(size),
                member_id=None if member is None else int(member, 16),
                **options,
            )
        except ValueError as e:
            raise GroupError(GroupErrorKind.BAD_REQUEST, f"{LAUNCH_SIZE} or {LAUNCH_MEMBER}: {e}") from e

    # --- threads -----------------------------------------------------------------------------

    def _update(self, view: View, expelled: bool) -> None:
        with self._changed:
            if view.version != self._state.view.version or expelled != self._state.expelled:
                log.debug("view changed: group=%s version=%d size=%d", view.group, view.version, view.size)
                self._state.view = view
                self._state.expelled = expelled
                self._changed.notify_all()

    def _heartbeats(self, client: "Client") -> None:
        try:
            while not self._stop.wait(self._heartbeat):
                request = {"op": "heartbeat", "group": self.name, "member": self.member_id}
                try:
                    reply = _call(client, request, self._dead_after, "heartbeat")
                except GroupError as e:
                    log.debug("heartbeat failed; trying again: %s", e)
                    continue
                if reply["result"] == "view":
                    self._update(View.from_wire(reply["view"]), False)
                elif reply["result"] == "not_member":
                    log.warning("this member was declared dead: group=%s", self.name)
                    self._update(View.from_wire(reply["view"]), True)
            try:
                _call(client, {"op": "leave", "group": self.name, "member": self.member_id}, 0.5, "leave")
            except GroupError as e:
                log.debug("leave not acknowledged; the broker will time the member out: %s", e)
        finally:
            client.close(linger=0)

    def _deliver(self, message: "Message") -> None:
        """The mailbox thread: each frame from the bus into the state."""
        ack_to = None
        try:
            frame = wire.decode_body(message.body)
            kind = frame["kind"]
        except Exception:
            with self._changed:
                self._state.malformed += 1
            return
        with self._changed:
            state = self._state
            try:
                if kind == "user":
                    sender = frame["from"]
                    if frame.get("exclude_sender") and sender == self.member_id:
                        return
                    sync = frame.get("sync")
                    received = _Received(sender, frame["lamport"], bytes(frame["body"]), sync)
                    if sync is not None and sync.get("mode") == "taken":
                        state.rendezvous.append(received)
                    else:
                        if sync is not None and sync.get("mode") == "delivered":
                            ack_to = (sender, sync["id"])
                        state.mailbox.append(received)
                elif kind == "ack":
                    state.acks.setdefault(frame["id"], set()).add(frame["from"])
                elif kind == "barrier":
                    state.barriers.setdefault(frame["round"], set()).add(frame["from"])
                else:
                    state.malformed += 1
                    return
            except (KeyError, TypeError):
                state.malformed += 1
                return
            self._changed.notify_all()
        if ack_to is not None and self._acker is not None:
            try:
                _send_frame(
                    self._acker,
                    member_topic(self.name, ack_to[0]),
                    {"kind": "ack", "from": self.member_id, "id": ack_to[1]},
                )
            except GroupError as e:
                log.warning("cannot acknowledge a synchronous message: %s", e)

    # --- what the member knows ---------------------------------------------------------------

    @property
    def view(self) -> View:
        """The current view."""
        with self._changed:
            return self._state.view

    @property
    def rank(self) -> Optional[int]:
        """This member's rank in the current view (``None`` once it was declared dead)."""
        with self._changed:
            if self._state.expelled:
                return None
            return self._state.view.rank_of(self.member_id)

    @property
    def size(self) -> int:
        """Members in the current view."""
        return self.view.size

    @property
    def is_expelled(self) -> bool:
        """Whether the broker declared this member dead; it must join again to take part."""
        with self._changed:
            return self._state.expelled

    @property
    def clock(self) -> int:
        """This member's Lamport clock: +1 before each application send, max(local, stamp)
        + 1 on receiving one; barriers and heartbeats leave it alone."""
        return self._clock.get()

    @property
    def malformed(self) -> int:
        """Frames on the group's topics that could not be decoded (ignored)."""
        with self._changed:
            return self._state.malformed

    def wait_view(self, after: int, timeout: float) -> Optional[View]:
        """Waits for a view newer than version ``after``; ``None`` after ``timeout``."""
        with self._changed:
            if self._changed.wait_for(lambda: self._state.view.version > after, timeout):
                return self._state.view
            return None

    def rank_of(self, member: int) -> Optional[int]:
        """The rank of ``member`` in the current view."""
        return self.view.rank_of(member)

    # --- messages ----------------------------------------------------------------------------

    def _member_at(self, rank: int) -> int:
        view = self.view
        if not 0 <= rank < view.size:
            raise GroupError(GroupErrorKind.NO_SUCH_RANK, f"rank {rank} in a view of {view.size}")
        return view.members[rank]

    def _send_user(self, topic: str, body: bytes, exclude_sender: bool, sync: Optional[dict[str, Any]]) -> int:
        if self.is_expelled:
            raise GroupError(GroupErrorKind.EXPELLED, self.name)
        stamp = self._clock.tick()
        frame = {
            "kind": "user",
            "from": self.member_id,
            "lamport": stamp,
            "exclude_sender": exclude_sender,
            "sync": sync,
            "body": body,
        }
        assert self._client is not None
        _send_frame(self._client, topic, frame)
        return stamp

    def publish(self, value: Any) -> int:
        """Sends ``value`` (MessagePack) to every member, this one included; returns its
        stamp."""
        return self._send_user(all_topic(self.name), wire.encode_body(value), False, None)

    def broadcast(self, value: Any) -> int:
        """Sends ``value`` to every member but this one; returns its stamp."""
        return self._send_user(all_topic(self.name), wire.encode_body(value), True, None)

    def send_to(self, rank: int, value: Any) -> int:
        """Sends ``value`` to the member of ``rank`` in the current view; returns its stamp.
        Raises ``GroupError`` (``NO_SUCH_RANK``)."""
        return self.send_bytes_to(rank, wire.encode_body(value))

    def send_bytes_to(self, rank: int, body: bytes) -> int:
        """``send_to`` with raw bytes."""
        member = self._member_at(rank)
        return self._send_user(member_topic(self.name, member), bytes(body), False, None)

    def _received(self, r: _Received, sender_rank: Optional[int]) -> GroupMessage:
        self._clock.observe(r.lamport)
        return GroupMessage(r.sender, sender_rank, r.lamport, r.body)

    def recv(self, timeout: Optional[float] = None, *, sender: Optional[int] = None) -> Optional[GroupMessage]:
        """The next message in the mailbox (from member ``sender`` only, when given, leaving
        the others in order); ``None`` after ``timeout`` seconds (``None``: wait)."""

        def find() -> Optional[int]:
            for i, r in enumerate(self._state.mailbox):
                if sender is None or r.sender == sender:
                    return i
            return None

        with self._changed:
            self._changed.wait_for(lambda: find() is not None, timeout)
            i = find()
            if i is None:
                return None
            r = self._state.mailbox[i]
            del self._state.mailbox[i]
            sender_rank = self._state.view.rank_of(r.sender)
        return self._received(r, sender_rank)

    def try_recv(self) -> Optional[GroupMessage]:
        """A message already waiting, or ``None``."""
        return self.recv(0)

    def __iter__(self) -> Iterator[GroupMessage]:
        while True:
            message = self.recv()
            if message is not None:
                yield message

    # --- waits on every member ---------------------------------------------------------------

    def _wait_all(
        self,
        members: tuple[int, ...],
        timeout: float,
        what: str,
        pick: Callable[[_State], Optional[set[int]]],
        done: Callable[[_State], object],
    ) -> None:
        def missing() -> list[int]:
            have = pick(self._state) or set()
            return [m for m in members if m not in have]

        def gone(left: list[int]) -> Optional[int]:
            return next((m for m in left if m not in self._state.view.members), None)

        with self._changed:
            self._changed.wait_for(
                lambda: not missing() or gone(missing()) is not None or self._state.expelled, timeout
            )
            left = missing()
            done(self._state)
            if not left:
                return
            if self._state.expelled:
                raise GroupError(GroupErrorKind.EXPELLED, self.name)
            m = gone(left)
            if m is not None:
                raise GroupError(GroupErrorKind.MEMBER_GONE, f"member {m:016x} left during {what}")
            raise GroupError(GroupErrorKind.TIMED_OUT, f"{what}: {len(left)} members missing")

    def barrier(self, timeout: float = 60.0) -> None:
        """Waits until every member of the current view has reached this barrier too.
        Barriers are numbered by each member from 1, so every member must call it the same
        number of times; an early arrival for a later barrier is kept for it.

        Raises ``GroupError`` (``MEMBER_GONE``, ``TIMED_OUT``, ``EXPELLED``).
        """
        self._barrier_round += 1
        round_ = self._barrier_round
        assert self._client is not None
        _send_frame(self._client, all_topic(self.name), {"kind": "barrier", "from": self.member_id, "round": round_})
        self._wait_all(
            self.view.members,
            timeout,
            f"barrier {round_}",
            lambda s: s.barriers.get(round_),
            lambda s: s.barriers.pop(round_, None),
        )

    def _wait_acks(self, message_id: int, members: tuple[int, ...], timeout: float) -> None:
        self._wait_all(
            members,
            timeout,
            "a synchronous send",
            lambda s: s.acks.get(message_id),
            lambda s: s.acks.pop(message_id, None),
        )

    def broadcast_sync(self, value: Any, timeout: float = 60.0) -> int:
        """Sends ``value`` to every member but this one and returns (its stamp) once each of
        them has it in its mailbox and said so. Raises ``GroupError`` (``MEMBER_GONE``,
        ``TIMED_OUT``)."""
        message_id = wire.random_u64()
        others = tuple(m for m in self.view.members if m != self.member_id)
        stamp = self._send_user(
            all_topic(self.name), wire.encode_body(value), True, {"mode": "delivered", "id": message_id}
        )
        self._wait_acks(message_id, others, timeout)
        return stamp

    def send_to_sync(self, rank: int, value: Any, timeout: float = 60.0) -> int:
        """Sends ``value`` to the member of ``rank`` and returns (its stamp) once that
        member has taken it with ``recv_from_sync``: a rendezvous."""
        member = self._member_at(rank)
        message_id = wire.random_u64()
        stamp = self._send_user(
            member_topic(self.name, member), wire.encode_body(value), False, {"mode": "taken", "id": message_id}
        )
        self._wait_acks(message_id, (member,), timeout)
        return stamp

    def recv_from_sync(self, rank: int, timeout: float = 60.0) -> GroupMessage:
        """Takes the next message the member of ``rank`` sent with ``send_to_sync``, waiting
        up to ``timeout``, and releases its sender. Raises ``GroupError`` (``NO_SUCH_RANK``,
        ``MEMBER_GONE``, ``TIMED_OUT``)."""
        member = self._member_at(rank)

        def find() -> Optional[int]:
            return next((i for i, r in enumerate(self._state.rendezvous) if r.sender == member), None)

        with self._changed:
            self._changed.wait_for(
                lambda: find() is not None or member not in self._state.view.members, timeout
            )
            i = find()
            if i is None:
                if member in self._state.view.members:
                    raise GroupError(GroupErrorKind.TIMED_OUT, f"nothing from rank {rank}")
                raise GroupError(GroupErrorKind.MEMBER_GONE, f"member of rank {rank} left")
            r = self._state.rendezvous[i]
            del self._state.rendezvous[i]
            sender_rank = self._state.view.rank_of(member)
        if r.sync is not None and r.sync.get("mode") == "taken":
            assert self._client is not None
            _send_frame(
                self._client, member_topic(self.name, member), {"kind": "ack", "from": self.member_id, "id": r.sync["id"]}
            )
        return self._received(r, sender_rank)

    # --- the critical section ----------------------------------------------------------------

    def lock(self, timeout: float = 60.0) -> "LockGuard":
        """Takes the group's critical section: waits for the ring's token, which goes rank
        to rank, stopping at members that asked for it. Release it with ``unlock`` (or by
        leaving the guard's ``with`` block). If the holder dies, exactly one new token goes
        on from its place (``LockGuard.generation`` counts those).

        Raises ``GroupError`` (``TIMED_OUT``, ``EXPELLED``).
        """
        if self.is_expelled:
            raise GroupError(GroupErrorKind.EXPELLED, self.name)
        assert self._client is not None
        reply = _call(self._client, {"op": "lock", "group": self.name, "member": self.member_id}, timeout, "waiting for the token")
        if reply["result"] != "locked":
            raise GroupError(GroupErrorKind.PROTOCOL, f"unexpected reply to lock: {reply}")
        return LockGuard(self, reply["generation"])

    def unlock(self) -> None:
        """Passes the token on along the ring."""
        assert self._client is not None
        try:
            _call(self._client, {"op": "unlock", "group": self.name, "member": self.member_id}, self._client.timeout, "unlock")
        except GroupError as e:
            # The broker passes the token on when it declares this member dead.
            log.warning("unlock not acknowledged: %s", e)

    # --- leaving -----------------------------------------------------------------------------

    def _close_sockets(self) -> None:
        if self._mailbox is not None:
            self._mailbox.unregister().close()
            self._mailbox = None
        for client in (self._client, self._acker):
            if client is not None:
                client.close(linger=0.5)
        self._client = self._acker = None

    def leave(self) -> None:
        """Leaves the group now and closes the member's connections."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._close_sockets()

    close = leave

    def __enter__(self) -> "Group":
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def __repr__(self) -> str:
        return f"Group(name={self.name!r}, member={self.member_id:016x}, rank={self.rank}, size={self.size})"


class LockGuard:
    """The group's critical section, held until ``unlock`` or the end of its ``with``
    block."""

    def __init__(self, group: Group, generation: int) -> None:
        self.group = group
        self.generation = generation
        """How many times the token was made anew after a holder died before this member
        got it."""
        self._held = True

    def unlock(self) -> None:
        """Passes the token on (once)."""
        if self._held:
            self._held = False
            self.group.unlock()

    def __enter__(self) -> "LockGuard":
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()


__all__ = ["GROUP_SERVICE", "Group", "GroupMessage", "LockGuard", "View", "all_topic", "member_topic"]
