"""``Kv``: the key-value store through the broker (``zhub.kv``); ``Watcher``: its changes over
the bus; ``Replica``: a local copy of a key prefix that follows the store.

Mirrors ``client/src/kv.rs``; the request and reply bodies are the MessagePack maps of
``protocol/src/kv.rs`` (``{"op": "get", "key": ...}`` in, ``{"result": "value", ...}`` out).
Keys are UTF-8 strings; values are MessagePack (``get``/``put``/``cas``) or raw bytes (the
``_bytes`` methods). Every change has a revision, the offset of its record in the store's
change log, and is acknowledged once durable under the store's policy.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence, Union

from . import _wire as wire
from .errors import RecvError, RecvErrorKind, RequestError, RequestErrorKind

if TYPE_CHECKING:
    from .client import Client, ClientOptions, Subscriber

log = logging.getLogger("zhub.kv")

KV_SERVICE = "zhub.kv"
"""The key-value store's service name."""

WATCH_PREFIX = "$zhub.kv."
"""Topic prefix of the change messages: the key follows it."""

_PAGE = 1000
_CHANGES_BATCH = 1000
_CHANGES_WAIT = 0.5


@dataclass(frozen=True)
class KvEntry:
    """A key with its value, the revision of its last change and its expiry."""

    key: str
    value: bytes
    revision: int
    expires_at_us: Optional[int] = None

    def decode(self) -> Any:
        """The value decoded as MessagePack (what ``Kv.put`` stores)."""
        return wire.decode_body(self.value)

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> "KvEntry":
        """From the reply's map."""
        return cls(m["key"], bytes(m["value"]), m["revision"], m.get("expires_at_us"))


@dataclass(frozen=True)
class KvChange:
    """One change of the store: ``kind`` is ``"put"``, ``"delete"`` or ``"expire"``."""

    revision: int
    key: str
    kind: str
    value: Optional[bytes]
    expires_at_us: Optional[int]
    timestamp_us: int

    def decode(self) -> Any:
        """The new value (of a put) decoded as MessagePack; ``None`` for other kinds."""
        return None if self.value is None else wire.decode_body(self.value)

    @classmethod
    def from_wire(cls, m: dict[str, Any]) -> "KvChange":
        """From the reply's (or bus message's) map."""
        value = m.get("value")
        return cls(
            m["revision"],
            m["key"],
            m["kind"],
            None if value is None else bytes(value),
            m.get("expires_at_us"),
            m["timestamp_us"],
        )


@dataclass(frozen=True)
class Stored:
    """A compare-and-set stored its value at ``revision``."""

    revision: int


@dataclass(frozen=True)
class Mismatch:
    """A compare-and-set found the key at ``current`` (``None``: absent); nothing stored."""

    current: Optional[int]


CasOutcome = Union[Stored, Mismatch]
"""What a compare-and-set did."""


def _protocol(what: str) -> RequestError:
    return RequestError(RequestErrorKind.PROTOCOL, f"unexpected reply to {what}")


def _ttl_ms(ttl: Optional[float]) -> Optional[int]:
    return None if ttl is None else max(1, int(ttl * 1000))


def _encode(value: Any) -> bytes:
    try:
        return wire.encode_body(value)
    except Exception as e:
        raise RequestError(RequestErrorKind.CODEC, "value") from e


class Kv:
    """The key-value store, reached through a ``Client`` (``client.kv``)."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    def _call(self, request: dict[str, Any], timeout: Optional[float] = None) -> dict[str, Any]:
        reply = self._client.call_builtin(KV_SERVICE, request, timeout)
        if not isinstance(reply, dict) or "result" not in reply:
            raise _protocol(request["op"])
        return reply

    def get_entry(self, key: str) -> Optional[KvEntry]:
        """The key's entry (value, revision, expiry), or ``None`` when it is absent.

        Raises ``RequestError`` (``BAD_REQUEST`` for an invalid key).
        """
        reply = self._call({"op": "get", "key": key})
        if reply["result"] == "value":
            return KvEntry.from_wire(reply["entry"])
        if reply["result"] == "not_found":
            return None
        raise _protocol("get")

    def get_bytes(self, key: str) -> Optional[bytes]:
        """The key's raw value, or ``None``."""
        entry = self.get_entry(key)
        return None if entry is None else entry.value

    def get(self, key: str, default: Any = None) -> Any:
        """The key's value decoded as MessagePack, or ``default`` when absent.

        Raises ``RequestError`` (``CODEC`` when the value is not MessagePack).
        """
        entry = self.get_entry(key)
        if entry is None:
            return default
        try:
            return entry.decode()
        except Exception as e:
            raise RequestError(RequestErrorKind.CODEC, f"value of {key!r}") from e

    def put(self, key: str, value: Any, *, ttl: Optional[float] = None) -> int:
        """Sets the key to ``value`` (MessagePack), expiring after ``ttl`` seconds if given;
        returns the change's revision.

        Raises ``RequestError`` (``BAD_REQUEST`` for an invalid key, ``REJECTED`` for an
        oversized value).
        """
        return self.put_bytes(key, _encode(value), ttl=ttl)

    def put_bytes(self, key: str, value: bytes, *, ttl: Optional[float] = None) -> int:
        """Sets the key to raw bytes; returns the revision. Raises as ``put``."""
        request = {"op": "put", "key": key, "value": bytes(value), "ttl_ms": _ttl_ms(ttl)}
        reply = self._call(request)
        if reply["result"] == "revision":
            return reply["revision"]
        raise _protocol("put")

    def get_many(self, keys: Sequence[str]) -> List[Optional[KvEntry]]:
        """The entries of ``keys`` in one request, in their order, ``None`` where absent
        (1 to 10,000 keys). Raises ``RequestError`` (``BAD_REQUEST`` for an invalid key or
        batch size)."""
        reply = self._call({"op": "get_many", "keys": list(keys)})
        if reply["result"] == "values" and len(reply["entries"]) == len(keys):
            return [None if e is None else KvEntry.from_wire(e) for e in reply["entries"]]
        raise _protocol("get_many")

    def put_many(self, entries: Mapping[str, bytes] | Sequence[tuple[str, bytes]], *, ttl: Optional[float] = None) -> List[int]:
        """Sets every key to its raw value in one request; returns the revisions in order,
        once all are durable (one sync for the batch under ``always``). A bad key or an
        oversized value refuses the whole batch before any write; a disk failure in the
        middle fails the call, and earlier writes may then be kept or lost, as after a
        crash."""
        pairs = list(entries.items()) if isinstance(entries, Mapping) else list(entries)
        writes = [{"op": "put", "key": k, "value": bytes(v), "ttl_ms": _ttl_ms(ttl)} for k, v in pairs]
        revisions = self._write_many(writes)
        if any(r is None for r in revisions):
            raise _protocol("put_many")
        return revisions

    def delete_many(self, keys: Sequence[str]) -> List[Optional[int]]:
        """Deletes every key in one request; the revisions in order, ``None`` where a key
        was absent."""
        return self._write_many([{"op": "delete", "key": k} for k in keys])

    def _write_many(self, writes: List[dict[str, Any]]) -> List[Optional[int]]:
        reply = self._call({"op": "write_many", "writes": writes})
        if reply["result"] == "revisions" and len(reply["revisions"]) == len(writes):
            return list(reply["revisions"])
        raise _protocol("write_many")

    def delete(self, key: str) -> Optional[int]:
        """Deletes the key; returns the change's revision, or ``None`` when it was absent."""
        reply = self._call({"op": "delete", "key": key})
        if reply["result"] == "revision":
            return reply["revision"]
        if reply["result"] == "not_found":
            return None
        raise _protocol("delete")

    def cas(self, key: str, expected: Optional[int], value: Any, *, ttl: Optional[float] = None) -> CasOutcome:
        """Sets the key to ``value`` only if its revision is ``expected`` (``None``: only if
        absent). Of many clients racing from the same revision, exactly one stores."""
        return self.cas_bytes(key, expected, _encode(value), ttl=ttl)

    def cas_bytes(self, key: str, expected: Optional[int], value: bytes, *, ttl: Optional[float] = None) -> CasOutcome:
        """``cas`` with raw bytes."""
        request = {"op": "cas", "key": key, "expected": expected, "value": bytes(value), "ttl_ms": _ttl_ms(ttl)}
        reply = self._call(request)
        if reply["result"] == "revision":
            return Stored(reply["revision"])
        if reply["result"] == "mismatch":
            return Mismatch(reply.get("current"))
        raise _protocol("cas")

    def incr(self, key: str, delta: int = 1) -> tuple[int, int]:
        """Adds ``delta`` to the counter at ``key`` (absent: 0), atomically; returns the new
        value and the change's revision. ``get`` reads the counter as an int.

        Raises ``RequestError`` (``REJECTED`` when the value is not an integer or would
        overflow).
        """
        reply = self._call({"op": "incr", "key": key, "delta": delta})
        if reply["result"] == "counter":
            return reply["value"], reply["revision"]
        raise _protocol("incr")

    def list(self, prefix: str = "", after: Optional[str] = None, limit: int = _PAGE) -> tuple[List[KvEntry], bool]:
        """One page of the keys starting with ``prefix``, in key order, after ``after``;
        with whether more follow."""
        reply = self._call({"op": "list", "prefix": prefix, "after": after, "limit": limit})
        if reply["result"] == "entries":
            return [KvEntry.from_wire(e) for e in reply["entries"]], reply["more"]
        raise _protocol("list")

    def list_all(self, prefix: str = "") -> List[KvEntry]:
        """Every key starting with ``prefix``, fetched page by page."""
        entries: List[KvEntry] = []
        while True:
            page, more = self.list(prefix, entries[-1].key if entries else None, _PAGE)
            entries.extend(page)
            if not more:
                return entries

    def history(self, key: str, limit: int = 16) -> List[KvChange]:
        """The key's last changes, newest first, at most ``limit``."""
        reply = self._call({"op": "history", "key": key, "limit": limit})
        if reply["result"] == "history":
            return [KvChange.from_wire(c) for c in reply["changes"]]
        raise _protocol("history")

    def snapshot(self, prefix: str = "") -> tuple[List[KvEntry], int]:
        """Every entry under ``prefix`` and the revision they are consistent at."""
        reply = self._call({"op": "snapshot", "prefix": prefix})
        if reply["result"] == "snapshot":
            return [KvEntry.from_wire(e) for e in reply["entries"]], reply["revision"]
        raise _protocol("snapshot")

    def changes(self, prefix: str, start: int, limit: int = _CHANGES_BATCH, wait: float = 0) -> Union[tuple[List[KvChange], int], int]:
        """Changes under ``prefix`` from revision ``start`` on, waiting up to ``wait``
        seconds for one: ``(changes, next)``; or, when those changes were compacted away,
        the oldest revision still held (an int: take a new snapshot)."""
        request = {"op": "changes", "prefix": prefix, "from": start, "max": limit, "wait_ms": int(wait * 1000)}
        reply = self._call(request, self._client.timeout + wait)
        if reply["result"] == "changes":
            return [KvChange.from_wire(c) for c in reply["changes"]], reply["next"]
        if reply["result"] == "compacted":
            return int(reply["first"])
        raise _protocol("changes")

    def watch(self, prefix: str = "") -> "Watcher":
        """Every change to keys starting with ``prefix``, as it happens, over the bus.
        Returns once the watch is live: every change made after it returns is delivered."""
        return Watcher(self._client.subscribe(WATCH_PREFIX + prefix))

    def replica(self, prefix: str = "") -> "Replica":
        """A local copy of every key under ``prefix``, kept up to date by a thread with its
        own connection; returns once the first snapshot is in."""
        return Replica._start(self._client.info.main, self._client.options, prefix)


class Watcher:
    """Changes to a key prefix, received over the bus (``Kv.watch``)."""

    def __init__(self, subscriber: "Subscriber") -> None:
        self._subscriber = subscriber

    def recv(self, timeout: Optional[float] = None) -> Optional[KvChange]:
        """The next change; ``None`` after ``timeout`` seconds (``None``: wait for one)."""
        message = self._subscriber.recv(timeout)
        if message is None:
            return None
        try:
            return KvChange.from_wire(message.decode())
        except (KeyError, TypeError, AttributeError) as e:
            raise RecvError(RecvErrorKind.CODEC, "key-value change") from e

    @property
    def lost(self) -> int:
        """Changes lost because this watcher fell too far behind."""
        return max(self._subscriber.missed, self._subscriber.gaps)

    def close(self) -> None:
        """Stops the watch."""
        self._subscriber.close()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Replica:
    """A local, in-memory copy of a key prefix, following the store: a snapshot consistent at
    some revision, then every change from that revision on, in order, each applied once.
    When the broker goes away it keeps its data, reconnects and goes on from the revision
    it had reached (or a new snapshot when those changes were compacted away). ``close``
    stops its thread."""

    def __init__(self) -> None:
        """Use ``Replica.connect`` or ``Kv.replica``."""
        self._entries: dict[str, KvEntry] = {}
        self._revision = 0
        self._snapshots = 0
        self._connected = False
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def connect(cls, url: str, prefix: str = "", *, timeout: float = 5.0) -> "Replica":
        """Connects to the broker at ``url`` and follows ``prefix``; returns once the first
        snapshot is applied."""
        from .client import ClientOptions

        return cls._start(url, ClientOptions(timeout=timeout), prefix)

    @classmethod
    def _start(cls, url: str, options: "ClientOptions", prefix: str) -> "Replica":
        from .client import Client
        from .errors import ConnectError

        replica = cls()
        try:
            client = Client.connect_with(url, options)
        except ConnectError as e:
            raise RequestError(RequestErrorKind.TRANSPORT, "connect") from e
        try:
            replica._snapshot(client, prefix)
        except BaseException:
            client.close(linger=0)
            raise
        replica._thread = threading.Thread(
            target=replica._follow, args=(client, url, options, prefix), name="zhub-kv-replica", daemon=True
        )
        replica._thread.start()
        return replica

    def _snapshot(self, client: "Client", prefix: str) -> None:
        entries, revision = client.kv.snapshot(prefix)
        with self._changed:
            self._entries = {e.key: e for e in entries}
            self._revision = revision
            self._snapshots += 1
            self._connected = True
            self._changed.notify_all()

    def _apply(self, changes: List[KvChange], next_revision: int) -> None:
        with self._changed:
            for change in changes:
                # The sequence rule: a change before the revision reached is already applied.
                if change.revision < self._revision:
                    continue
                if change.kind == "put":
                    self._entries[change.key] = KvEntry(
                        change.key, change.value or b"", change.revision, change.expires_at_us
                    )
                else:
                    self._entries.pop(change.key, None)
                self._revision = change.revision + 1
            self._revision = max(self._revision, next_revision)
            self._connected = True
            self._changed.notify_all()

    def _follow(self, client: Optional["Client"], url: str, options: "ClientOptions", prefix: str) -> None:
        from .client import Client
        from .errors import ConnectError

        backoff = 0.05
        try:
            while not self._stop.is_set():
                if client is None:
                    if self._stop.wait(backoff):
                        return
                    backoff = min(backoff * 2, 2.0)
                    try:
                        client = Client.connect_with(url, options)
                    except ConnectError:
                        continue
                with self._changed:
                    start = self._revision
                try:
                    outcome = client.kv.changes(prefix, start, _CHANGES_BATCH, _CHANGES_WAIT)
                except RequestError as e:
                    log.debug("replica lost the broker; reconnecting: %s", e)
                    with self._changed:
                        self._connected = False
                        self._changed.notify_all()
                    client.close(linger=0)
                    client = None
                    continue
                backoff = 0.05
                if isinstance(outcome, int):
                    log.debug("replica fell behind compaction; taking a new snapshot")
                    self._snapshot(client, prefix)
                else:
                    self._apply(*outcome)
        finally:
            if client is not None:
                client.close(linger=0)

    def get_entry(self, key: str) -> Optional[KvEntry]:
        """The key's entry in the replica."""
        with self._changed:
            return self._entries.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The key's value decoded as MessagePack, or ``default`` when absent."""
        entry = self.get_entry(key)
        return default if entry is None else entry.decode()

    def entries(self) -> dict[str, KvEntry]:
        """A copy of every entry."""
        with self._changed:
            return dict(self._entries)

    @property
    def revision(self) -> int:
        """The revision reached: every change before it is applied."""
        with self._changed:
            return self._revision

    @property
    def snapshots(self) -> int:
        """Snapshots taken (1 unless the replica had to start over after compaction)."""
        with self._changed:
            return self._snapshots

    @property
    def is_connected(self) -> bool:
        """Whether the replica's connection is up (it serves its data either way)."""
        with self._changed:
            return self._connected

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Waits until the change at ``revision`` is applied (say, the revision a put
        returned); ``False`` after ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self._revision > revision, timeout)

    def wait_change(self, after: int, timeout: float) -> Optional[int]:
        """Waits for a change after revision ``after``; the revision reached, or ``None``
        after ``timeout`` seconds."""
        return self.revision if self.wait_for(after, timeout) else None

    def close(self) -> None:
        """Stops following the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Replica":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["KV_SERVICE", "WATCH_PREFIX", "CasOutcome", "Kv", "KvChange", "KvEntry", "Mismatch", "Replica", "Stored", "Watcher"]
