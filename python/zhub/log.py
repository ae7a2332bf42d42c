"""``Log``: the event log through the broker (``zhub.log``): streams, appends, reads, tails,
consumer groups, and journals (durable topics).

Mirrors ``client/src/log.rs``; the request and reply bodies are the MessagePack maps of
``protocol/src/log.rs``. Typed appends encode MessagePack; the ``_bytes`` ones take raw
bytes. An append returns once the stream's durability policy is met.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence

from . import _wire as wire
from .errors import RequestError, RequestErrorKind

if TYPE_CHECKING:
    from .client import Client, Message

LOG_SERVICE = "zhub.log"
"""The event log's service name."""

_BATCH_BYTES = 1 << 20


@dataclass(frozen=True)
class Record:
    """A record read back from a stream."""

    offset: int
    timestamp_us: int
    key: Optional[bytes]
    value: bytes

    def decode(self) -> Any:
        """The value decoded as MessagePack (what ``Log.append`` writes)."""
        return wire.decode_body(self.value)

    def message(self) -> "Message":
        """The bus message a journal's record holds (topic, header, body)."""
        from .client import Message

        return Message.from_frame(self.value)

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> "Record":
        """From the reply's map."""
        key = m.get("key")
        return cls(m["offset"], m["timestamp_us"], None if key is None else bytes(key), bytes(m["value"]))


@dataclass(frozen=True)
class StreamSummary:
    """One stream, as ``Log.streams`` lists it."""

    name: str
    first_offset: int
    next_offset: int
    records: int
    size_bytes: int


def _fsync(policy: str) -> Any:
    """``always``, ``never`` or ``interval:MS`` as the wire's FsyncPolicy."""
    if policy in ("always", "never"):
        return policy
    if policy.startswith("interval:") and policy[9:].isdigit():
        return {"interval": {"ms": int(policy[9:])}}
    raise RequestError(RequestErrorKind.BAD_REQUEST, f"fsync {policy!r}: expected always, interval:MS or never")


def _protocol(what: str) -> RequestError:
    return RequestError(RequestErrorKind.PROTOCOL, f"unexpected reply to {what}")


def _from(offset: Optional[int], time_us: Optional[int]) -> dict[str, int]:
    return {"time": time_us} if time_us is not None else {"offset": offset or 0}


class Log:
    """The event log, reached through a ``Client`` (``client.log``)."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    def _call(self, request: dict[str, Any], expect: str, timeout: Optional[float] = None) -> dict[str, Any]:
        reply = self._client.call_builtin(LOG_SERVICE, request, timeout)
        if not isinstance(reply, dict) or reply.get("result") != expect:
            raise _protocol(request["op"])
        return reply

    def create(
        self,
        stream: str,
        *,
        fsync: Optional[str] = None,
        segment_bytes: Optional[int] = None,
        max_record_bytes: Optional[int] = None,
        retention_bytes: Optional[int] = None,
        retention: Optional[float] = None,
    ) -> None:
        """Creates a stream; ``None`` keeps a setting's default (fsync ``always``, 64 MiB
        segments, 8 MiB records, no retention). ``retention`` is in seconds.

        Raises ``RequestError`` (``REJECTED`` when it exists, ``BAD_REQUEST`` for a bad
        name: 1 to 200 of ``A-Z a-z 0-9 . _ -``, not starting with ``.``).
        """
        settings = {
            "fsync": None if fsync is None else _fsync(fsync),
            "segment_bytes": segment_bytes,
            "max_record_bytes": max_record_bytes,
            "retention_bytes": retention_bytes,
            "retention_ms": None if retention is None else int(retention * 1000),
        }
        self._call({"op": "create", "stream": stream, "settings": settings}, "created")

    def append(self, stream: str, event: Any, *, key: Optional[bytes] = None) -> int:
        """Appends one event (MessagePack); returns its offset once the stream's policy is
        met. Raises ``RequestError`` (``REJECTED`` for an unknown stream or an oversized
        record)."""
        return self.append_bytes(stream, wire.encode_body(event), key=key)

    def append_bytes(self, stream: str, value: bytes, *, key: Optional[bytes] = None, timestamp_us: Optional[int] = None) -> int:
        """Appends one record of raw bytes, with an optional key; returns its offset."""
        first, _ = self.append_records(stream, [(key, bytes(value), timestamp_us)])
        return first

    def append_batch(self, stream: str, events: Iterable[Any]) -> list[int]:
        """Appends events (MessagePack) in one request, all or none; returns their offsets."""
        first, count = self.append_records(stream, [(None, wire.encode_body(e), None) for e in events])
        return list(range(first, first + count))

    def append_records(self, stream: str, records: Sequence[tuple[Optional[bytes], bytes, Optional[int]]]) -> tuple[int, int]:
        """Appends ``(key, value, timestamp_us)`` records as given; returns the first offset
        and the count."""
        wire_records = [{"key": k, "value": v, "timestamp_us": t} for k, v, t in records]
        reply = self._call({"op": "append", "stream": stream, "records": wire_records}, "appended")
        return reply["first_offset"], reply["count"]

    def read_batch(
        self,
        stream: str,
        offset: Optional[int] = 0,
        *,
        time_us: Optional[int] = None,
        max_bytes: int = _BATCH_BYTES,
        max_records: int = 2**64 - 1,
        wait: float = 0,
    ) -> tuple[list[Record], int]:
        """One batch of records from ``offset`` (or the first stamped at or after
        ``time_us``), waiting up to ``wait`` seconds for new ones when there are none yet
        (long poll). Returns the records and the offset to read from next."""
        request = {
            "op": "read",
            "stream": stream,
            "from": _from(offset, time_us),
            "max_bytes": max_bytes,
            "max_records": max_records,
            "wait_ms": int(wait * 1000),
        }
        reply = self._call(request, "records", self._client.timeout + wait)
        return [Record.from_wire(r) for r in reply["records"]], reply["next_offset"]

    def read(self, stream: str, offset: int = 0, *, time_us: Optional[int] = None) -> Iterator[Record]:
        """The stream's records from ``offset`` (or ``time_us``) to its current end, fetched
        in batches."""
        records, next_offset = self.read_batch(stream, offset, time_us=time_us)
        while records:
            yield from records
            records, next_offset = self.read_batch(stream, next_offset)

    def tail(self, stream: str, offset: Optional[int] = None, *, wait: float = 1.0) -> Iterator[Record]:
        """Follows the stream: its records from ``offset`` (``None``: only those appended
        after this call), then each new one as it is appended, forever. Each empty long
        poll waits ``wait`` seconds.

        The end is looked up now, not at the first ``next``, so that what is appended
        between the call and the iteration is not skipped.
        """
        if offset is None:
            offset = next((s.next_offset for s in self.streams() if s.name == stream), 0)
        return self._follow(stream, offset, wait)

    def _follow(self, stream: str, offset: int, wait: float) -> Iterator[Record]:
        while True:
            records, offset = self.read_batch(stream, offset, wait=wait)
            yield from records

    def streams(self) -> list[StreamSummary]:
        """The streams."""
        reply = self._call({"op": "streams"}, "streams")
        return [
            StreamSummary(s["name"], s["first_offset"], s["next_offset"], s["records"], s["size_bytes"])
            for s in reply["streams"]
        ]

    def delete(self, stream: str) -> None:
        """Deletes a stream, with its consumer groups' positions and journal routes."""
        self._call({"op": "delete", "stream": stream}, "deleted")

    def commit(self, stream: str, group: str, offset: int) -> None:
        """Stores ``group``'s position (the next offset it will read) durably."""
        self._call({"op": "commit", "stream": stream, "group": group, "offset": offset}, "committed")

    def position(self, stream: str, group: str) -> Optional[int]:
        """``group``'s committed position (``None``: it never committed)."""
        return self._call({"op": "position", "stream": stream, "group": group}, "position").get("offset")

    def consumer(self, stream: str, group: str) -> "Consumer":
        """A consumer in ``group``: it reads on from the group's committed position (the
        stream's start when it never committed); ``Consumer.commit`` stores its position.
        Delivery is at least once."""
        return Consumer(self, stream, group, self.position(stream, group))

    def journal(self, prefix: str, stream: str) -> None:
        """Journals every bus message whose topic starts with ``prefix`` into ``stream``
        (created when missing), from now on and across restarts: a durable topic."""
        self._call({"op": "journal", "prefix": prefix, "stream": stream}, "journaling")

    def unjournal(self, prefix: str, stream: str) -> None:
        """Stops journaling ``prefix`` into ``stream``."""
        self._call({"op": "unjournal", "prefix": prefix, "stream": stream}, "unjournaled")

    def journals(self) -> list[tuple[str, str]]:
        """The journal routes, as ``(prefix, stream)``."""
        return [(j["prefix"], j["stream"]) for j in self._call({"op": "journals"}, "journals")["journals"]]

    def republish(self, stream: str, offset: int = 0, *, time_us: Optional[int] = None) -> int:
        """Publishes a journal's messages on the bus again, as first published, from
        ``offset`` (or ``time_us``) to the stream's current end; returns how many."""
        start = _from(offset, time_us)
        total, idle = 0, 0.001
        while True:
            reply = self._call(
                {"op": "republish", "stream": stream, "from": start, "max_records": 10_000}, "republished"
            )
            total += reply["count"]
            if reply["at_end"]:
                return total
            start = {"offset": reply["next_offset"]}
            if reply["count"] == 0:
                # The bus's queue is full: let it drain.
                time.sleep(idle)
                idle = min(idle * 2, 0.1)
            else:
                idle = 0.001


class Consumer:
    """A member of a consumer group reading a stream (``Log.consumer``)."""

    def __init__(self, log: Log, stream: str, group: str, committed: Optional[int]) -> None:
        self._log = log
        self.stream = stream
        self.group = group
        self._next = committed or 0
        self._committed = committed
        self._buffer: list[Record] = []

    def poll(self, wait: float = 0) -> Optional[Record]:
        """The next record, waiting up to ``wait`` seconds for one to be appended when the
        consumer is at the end of the stream (``None`` then)."""
        if not self._buffer:
            records, _ = self._log.read_batch(self.stream, self._next, wait=wait)
            self._buffer.extend(records)
        if not self._buffer:
            return None
        record = self._buffer.pop(0)
        self._next = record.offset + 1
        return record

    def commit(self) -> None:
        """Stores the position after the last record polled as the group's, durably; a
        no-op when nothing was read since the last commit."""
        if self._committed == self._next:
            return
        self._log.commit(self.stream, self.group, self._next)
        self._committed = self._next

    @property
    def position(self) -> int:
        """The offset of the next record ``poll`` returns."""
        return self._next

    @property
    def committed(self) -> Optional[int]:
        """The group's committed position as last known (``None``: never committed)."""
        return self._committed

    def seek(self, offset: int) -> None:
        """Moves to ``offset`` (commit to make it the group's)."""
        self._buffer.clear()
        self._next = offset

    def __iter__(self) -> Iterator[Record]:
        """Records as they come, forever (long polls of one second)."""
        while True:
            record = self.poll(1.0)
            if record is not None:
                yield record


__all__ = ["LOG_SERVICE", "Consumer", "Log", "Record", "StreamSummary"]
