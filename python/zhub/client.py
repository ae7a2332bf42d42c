"""``Client``: one connection to a zhub broker for requests, publishing and subscribing.

Mirrors the Rust ``zhub_client::Client`` (``client/src/client.rs``, ``publisher.rs`` and
``subscriber.rs``): given only the broker's main endpoint, it learns the publish and deliver
endpoints from ``zhub.info``; a first publish waits until the broker takes messages, and a
subscribe returns only once a probe has come back through the broker, so neither side loses
messages to ZeroMQ's slow joiner.

A client owns ZeroMQ sockets, which are not thread-safe: use one client per thread.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

import zmq

from . import _wire as wire
from .errors import (
    ConnectError,
    ConnectErrorKind,
    PublishError,
    PublishErrorKind,
    RecvError,
    RecvErrorKind,
    RequestError,
    RequestErrorKind,
    SubscribeError,
    SubscribeErrorKind,
)

if TYPE_CHECKING:
    from .kv import Kv
    from .log import Log

log = logging.getLogger("zhub.client")

DEFAULT_URL = "tcp://127.0.0.1:5555"
"""The broker's default main endpoint."""

INFO_SERVICE = "zhub.info"
STATS_SERVICE = "zhub.stats"
SERVICES_SERVICE = "zhub.services"
STORAGE_SERVICE = "zhub.storage"
GROUP_SERVICE = "zhub.group"

_PROBE_MAX_INTERVAL = 0.2
_DRAIN_EVERY = 1024

_STATUS_KINDS = {
    wire.Status.NO_SERVICE: RequestErrorKind.NO_SERVICE,
    wire.Status.BUSY: RequestErrorKind.BUSY,
    wire.Status.TIMED_OUT: RequestErrorKind.TIMED_OUT,
    wire.Status.WORKER_FAILED: RequestErrorKind.WORKER_FAILED,
    wire.Status.BAD_REQUEST: RequestErrorKind.BAD_REQUEST,
    wire.Status.TOO_LARGE: RequestErrorKind.TOO_LARGE,
    wire.Status.FORBIDDEN: RequestErrorKind.FORBIDDEN,
    wire.Status.REJECTED: RequestErrorKind.REJECTED,
}


def valid_url(url: str) -> bool:
    """Whether ``url`` is ``tcp://HOST:PORT``, ``ipc://PATH`` or ``inproc://NAME``."""
    if url.startswith("tcp://"):
        host, _, port = url[6:].rpartition(":")
        return bool(host) and port.isdigit() and int(port) < 65536
    for scheme in ("ipc://", "inproc://"):
        if url.startswith(scheme):
            return len(url) > len(scheme)
    return False


_WILDCARDS = {"0.0.0.0", "*", "[::]", "::", "[::0]"}


def connectable(bound: str, main_url: str) -> str:
    """An endpoint the broker reports as bound, with a wildcard host replaced by the host
    ``main_url`` names (or 127.0.0.1), so that it can be connected to."""
    if not bound.startswith("tcp://"):
        return bound
    host, sep, port = bound[6:].rpartition(":")
    if not sep or host not in _WILDCARDS:
        return bound
    main_host = "127.0.0.1"
    if main_url.startswith("tcp://"):
        h, sep, _ = main_url[6:].rpartition(":")
        if sep and h not in _WILDCARDS:
            main_host = h
    return f"tcp://{main_host}:{port}"


def _millis(seconds: float) -> int:
    return max(0, min(int(seconds * 1000), 2**31 - 1))


_KEY_LINE = re.compile(r'^\s*(public|secret)\s*=\s*"([^"]*)"\s*$')


@dataclass(frozen=True)
class Curve:
    """A CURVE login (``ClientOptions::curve`` in Rust), for a broker whose auth file sets
    ``[curve]``: the broker's public key and this side's key pair, each 40 characters of Z85.

    The connection is encrypted, and the broker logs it in as the user whose ``curve_keys``
    hold ``public``. A key it does not know, or a server key that is not its own, looks like
    a broker that does not answer. ``repr`` hides the secret key.
    """

    server_public: str
    public: str
    secret: str = field(repr=False)

    @classmethod
    def load(cls, key_file: str | os.PathLike, server_key_file: str | os.PathLike) -> "Curve":
        """Reads the key files ``zhub keygen --out`` writes: this side's pair from
        ``key_file`` (``public = "..."``, ``secret = "..."``) and the broker's public key from
        ``server_key_file`` (its ``.pub``). Raises ``ValueError`` naming the file when one
        lacks a key."""
        keys = _read_key_file(key_file)
        server = _read_key_file(server_key_file)
        if "secret" not in keys:
            raise ValueError(f"{key_file}: no `secret`: is it a public-key file?")
        if "public" not in keys or "public" not in server:
            raise ValueError(f"{key_file if 'public' not in keys else server_key_file}: no `public`")
        return cls(server["public"], keys["public"], keys["secret"])

    def apply(self, socket: zmq.Socket) -> None:
        """Makes ``socket`` log in with these keys on every connection (before ``connect``)."""
        socket.setsockopt(zmq.CURVE_SERVERKEY, self.server_public.encode())
        socket.setsockopt(zmq.CURVE_PUBLICKEY, self.public.encode())
        socket.setsockopt(zmq.CURVE_SECRETKEY, self.secret.encode())


@dataclass(frozen=True)
class Plain:
    """A password login (``ClientOptions::credentials`` in Rust), for a broker whose auth file
    gives the user a ``password``. PLAIN sends both in clear text: use it on loopback, a trusted
    LAN or through a tunnel. A wrong password looks like a broker that does not answer.
    ``repr`` hides the password.
    """

    user: str
    password: str = field(repr=False)

    def apply(self, socket: zmq.Socket) -> None:
        """Makes ``socket`` log in as this user on every connection (before ``connect``)."""
        socket.setsockopt(zmq.PLAIN_USERNAME, self.user.encode())
        socket.setsockopt(zmq.PLAIN_PASSWORD, self.password.encode())


def login_of(curve: Optional[Curve], user: Optional[str], password: Optional[str]) -> Optional[Curve | Plain]:
    """The one login the keywords ``curve``, ``user`` and ``password`` describe, if any;
    ``ValueError`` for both kinds at once, or a user without a password."""
    if user is None and password is None:
        return curve
    if curve is not None:
        raise ValueError("log in with curve= or with user= and password=, not both")
    if user is None or password is None:
        raise ValueError("a password login needs both user= and password=")
    return Plain(user, password)


def _read_key_file(path: str | os.PathLike) -> dict[str, str]:
    """The ``public`` and ``secret`` of a key file (TOML of those two strings only; Z85 has
    no quote character, so a line is read without a TOML parser, which 3.10 lacks)."""
    found: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = _KEY_LINE.match(line)
            if m:
                found[m.group(1)] = m.group(2)
    return found


@dataclass(frozen=True)
class ClientOptions:
    """How a client connects; every field has its default here.

    ``timeout``: seconds to wait for the broker (connect, requests, publishes that meet a
    full queue, subscription probes), 5. ``linger``: seconds unsent messages are kept after
    ``close``, 2. ``publish_hwm`` / ``subscribe_hwm``: messages queued per socket, 10,000.
    ``login``: a ``Curve`` or ``Plain`` login used on every socket the client opens, none.
    """

    timeout: float = 5.0
    linger: float = 2.0
    publish_hwm: int = 10_000
    subscribe_hwm: int = 10_000
    login: Optional[Curve | Plain] = None

    def secure(self, socket: zmq.Socket) -> None:
        """Applies the login, if any, to a socket about to connect."""
        if self.login is not None:
            self.login.apply(socket)


@dataclass(frozen=True)
class BrokerInfo:
    """What ``zhub.info`` says: the broker's version and endpoints, as connectable URLs."""

    version: str
    main: str
    publish: str
    subscribe: str
    deliver: str
    max_message: int = 0


@dataclass(frozen=True)
class Message:
    """One bus message: its topic, header and body."""

    topic: str
    header: wire.BusHeader
    body: bytes
    missed_before: int = field(default=0, compare=False)
    """Messages the broker dropped for this subscriber just before this one."""

    def decode(self) -> Any:
        """The body decoded as MessagePack (what ``publish`` sends).

        Raises ``RecvError`` (``CODEC``) when it is not MessagePack.
        """
        try:
            return wire.decode_body(self.body)
        except Exception as e:
            raise RecvError(RecvErrorKind.CODEC, f"message on {self.topic!r}") from e

    @property
    def value(self) -> Any:
        """The body: decoded when it is MessagePack, the raw bytes otherwise."""
        return self.decode() if self.is_msgpack else self.body

    @property
    def is_msgpack(self) -> bool:
        """Whether the publisher said the body is MessagePack."""
        return self.header.encoding == wire.ENCODING_MSGPACK

    @property
    def publisher(self) -> int:
        """The publishing client's id."""
        return self.header.publisher

    @property
    def seq(self) -> int:
        """Its sequence number among its publisher's messages on its topic."""
        return self.header.seq

    @property
    def lamport(self) -> int:
        """The publisher's Lamport clock at the send."""
        return self.header.lamport

    @property
    def timestamp(self) -> datetime:
        """The publisher's wall-clock send time."""
        return datetime.fromtimestamp(self.header.timestamp_us / 1e6, tz=timezone.utc)

    @classmethod
    def from_frame(cls, frame: bytes) -> "Message":
        """Decodes a whole bus frame (as a journal record holds it).

        Raises ``ValueError`` for a malformed frame.
        """
        topic, header, body = wire.decode_bus(frame)
        return cls(topic, header, body)


class _Publisher:
    """The publishing socket and per-topic sequence numbers (``client/src/publisher.rs``).

    An XPUB rather than a PUB: the broker's XSUB subscribes to everything once it sees the
    publisher, and an XPUB can read that subscription; until it arrives a PUB would drop
    messages. ``XPUB_NODROP`` makes a full queue push back (up to the timeout).
    """

    def __init__(self, context: zmq.Context, endpoint: str, publisher_id: int, max_body: int, options: ClientOptions) -> None:
        socket = context.socket(zmq.XPUB)
        socket.setsockopt(zmq.LINGER, _millis(options.linger))
        socket.setsockopt(zmq.SNDHWM, options.publish_hwm)
        socket.setsockopt(zmq.SNDTIMEO, _millis(options.timeout))
        socket.setsockopt(zmq.XPUB_NODROP, 1)
        options.secure(socket)
        socket.connect(endpoint)
        deadline = time.monotonic() + options.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                socket.close(0)
                raise PublishError(
                    PublishErrorKind.TIMED_OUT,
                    f"publish endpoint {endpoint} did not answer within {options.timeout}s",
                )
            if socket.poll(max(1, _millis(left)), zmq.POLLIN):
                if socket.recv(zmq.NOBLOCK)[:1] == b"\x01":
                    break
        self.socket = socket
        self.id = publisher_id
        self.seqs: dict[str, int] = {}
        self.max_body = max_body
        self._since_drain = 0

    def publish(self, topic: str, encoding: int, body: bytes, clock: wire.LamportClock) -> None:
        why = wire.check_topic(topic)
        if why:
            raise PublishError(PublishErrorKind.INVALID_TOPIC, f"{topic!r}: {why}")
        if topic.startswith("$"):
            raise PublishError(
                PublishErrorKind.INVALID_TOPIC, f"{topic!r}: topics starting with '$' are reserved for zhub"
            )
        self.publish_sequenced(topic, encoding, body, clock)

    def publish_sequenced(self, topic: str, encoding: int, body: bytes, clock: wire.LamportClock) -> None:
        seq = self.seqs.get(topic, 0) + 1
        self.seqs[topic] = seq
        header = wire.BusHeader(self.id, seq, wire.now_micros(), clock.tick(), encoding)
        self._send(topic, header, body)

    def publish_system(self, topic: str, body: bytes, clock: wire.LamportClock) -> None:
        header = wire.BusHeader(self.id, 0, wire.now_micros(), clock.get(), wire.ENCODING_RAW)
        self._send(topic, header, body)

    def _send(self, topic: str, header: wire.BusHeader, body: bytes) -> None:
        if self.max_body and len(body) > self.max_body:
            raise PublishError(
                PublishErrorKind.TOO_LARGE,
                f"a body of {len(body)} bytes on {topic!r}: the broker takes at most {self.max_body}",
            )
        try:
            self.socket.send(wire.encode_bus(topic, header, body), copy=False)
        except zmq.Again:
            raise PublishError(
                PublishErrorKind.TIMED_OUT, "the broker's queue stayed full for the whole timeout"
            ) from None
        except zmq.ZMQError as e:
            raise PublishError(PublishErrorKind.TRANSPORT, "send failed") from e
        # The broker's subscription messages pile up on the XPUB unless read now and then.
        self._since_drain += 1
        if self._since_drain >= _DRAIN_EVERY:
            self._since_drain = 0
            try:
                while True:
                    self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                pass


class Subscriber:
    """Messages on a set of topic prefixes, with gap detection and the Lamport clock.

    Made by ``Client.subscribe``. ``gaps`` counts holes in the per-publisher, per-topic
    sequence numbers; ``missed`` the messages the broker reported dropping for this
    subscriber (its queue was full). Iterating yields messages forever.
    """

    def __init__(self, socket: zmq.Socket, subscriber_id: int, clock: wire.LamportClock) -> None:
        self._socket = socket
        self._id = subscriber_id
        self._clock = clock
        self._pending: list[Message] = []
        self._last_seq: dict[tuple[int, str], int] = {}
        self.gaps = 0
        """Messages missing from the sequence numbers seen."""
        self.missed = 0
        """Messages the broker dropped for this subscriber, as its envelopes report."""
        self.malformed = 0
        """Frames that were not a valid addressed bus message, ignored."""
        self.received = 0
        """Messages received."""

    @property
    def lamport(self) -> int:
        """The Lamport clock shared with the client that made this subscriber."""
        return self._clock.get()

    def _take(self) -> Union[Message, tuple[str, bytes], None, bool]:
        """One frame off the socket: a message, a probe ``(topic, body)``, ``None`` for
        nothing useful, ``False`` when nothing is waiting."""
        try:
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return False
        first = frames[0]
        try:
            subscriber, missed = wire.decode_envelope(first)
        except ValueError:
            self.malformed += 1
            return None
        if subscriber != self._id:
            self.malformed += 1
            return None
        self.missed += missed
        frame = frames[1] if len(frames) > 1 else first[wire.ENVELOPE_LEN :]
        if not frame:
            return None
        try:
            topic, header, body = wire.decode_bus(frame)
        except (ValueError, UnicodeDecodeError):
            self.malformed += 1
            return None
        if topic.startswith(wire.PROBE_PREFIX):
            return (topic, body)
        key = (header.publisher, topic)
        last = self._last_seq.get(key)
        if last is not None:
            if header.seq > last + 1:
                self.gaps += header.seq - last - 1
            self._last_seq[key] = max(last, header.seq)
        else:
            # The first message from this publisher on this topic: earlier ones were published
            # before the subscription, so they are not gaps.
            self._last_seq[key] = header.seq
        self._clock.observe(header.lamport)
        self.received += 1
        return Message(topic, header, body, missed)

    def recv(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message; waits at most ``timeout`` seconds (``None``: as long as it
        takes) and returns ``None`` when none came.

        Raises ``RecvError`` (``TRANSPORT``) when the socket fails.
        """
        if self._pending:
            return self._pending.pop(0)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                got = self._take()
            except zmq.ZMQError as e:
                raise RecvError(RecvErrorKind.TRANSPORT, "recv failed") from e
            if isinstance(got, Message):
                return got
            if got is not False:
                continue
            if deadline is None:
                wait = 1000
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = max(1, _millis(left))
            try:
                self._socket.poll(wait, zmq.POLLIN)
            except zmq.ZMQError as e:
                raise RecvError(RecvErrorKind.TRANSPORT, "poll failed") from e

    def try_recv(self) -> Optional[Message]:
        """A message already waiting, or ``None``."""
        return self.recv(0)

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.recv()
            if message is not None:
                yield message

    def fileno(self) -> int:
        """The socket's file descriptor (readable when frames may be waiting), for select."""
        return int(self._socket.getsockopt(zmq.FD))

    def close(self) -> None:
        """Closes the subscription's socket."""
        self._socket.close(0)

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription:
    """A subscriber whose messages go to a callback on a thread of its own
    (``Client.subscribe_with``); ``unregister`` stops it and hands the subscriber back."""

    def __init__(self, context: zmq.Context, subscriber: Subscriber, callback: Callable[[Message], None]) -> None:
        endpoint = f"inproc://zhub-subscription-{wire.pid_tag()}"
        self._stop_rx = context.socket(zmq.PAIR)
        self._stop_rx.setsockopt(zmq.LINGER, 0)
        self._stop_rx.bind(endpoint)
        self._stop_tx = context.socket(zmq.PAIR)
        self._stop_tx.setsockopt(zmq.LINGER, 0)
        self._stop_tx.connect(endpoint)
        self._subscriber = subscriber
        self._callback = callback
        self._thread = threading.Thread(target=self._run, name="zhub-subscription", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._subscriber._socket, zmq.POLLIN)
        poller.register(self._stop_rx, zmq.POLLIN)
        while True:
            while True:
                message = self._subscriber.try_recv()
                if message is None:
                    break
                try:
                    self._callback(message)
                except Exception:
                    # One failing message must not end the subscription for the others.
                    log.exception("subscription callback failed on a message on %r", message.topic)
            ready = dict(poller.poll())
            if self._stop_rx in ready:
                break
        self._stop_rx.close(0)

    def unregister(self) -> Subscriber:
        """Stops the callback thread and returns the subscriber."""
        if self._thread.is_alive():
            self._stop_tx.send(b"stop")
            self._thread.join()
            self._stop_tx.close(0)
        return self._subscriber


class Client:
    """A connection to a zhub broker.

    ::

        client = zhub.Client.connect("tcp://127.0.0.1:5555")
        pongs = client.subscribe("pongs")
        client.publish("pings", "ping")
        message = pongs.recv()
        print(message.topic, message.decode())
    """

    def __init__(self, context: zmq.Context, info: BrokerInfo, options: ClientOptions, owns_context: bool = True) -> None:
        """Use ``Client.connect``; this makes a client of a known broker without asking it."""
        self._context = context
        self._owns_context = owns_context
        self._info = info
        self._options = options
        self._main = context.socket(zmq.DEALER)
        self._main.setsockopt(zmq.LINGER, _millis(options.linger))
        self._main.setsockopt(zmq.SNDTIMEO, _millis(options.timeout))
        options.secure(self._main)
        self._main.connect(info.main)
        self._publisher: Optional[_Publisher] = None
        self._publisher_id = wire.random_u64()
        self._clock = wire.LamportClock()
        self._next_request_id = wire.random_u64() >> 16
        self._outstanding: dict[int, float] = {}
        self._stash: dict[int, wire.Reply] = {}
        # The peer broker whose built-in services this client's requests go to (``at``).
        self._home: Optional[str] = None
        self._subscribers: list[Subscriber] = []
        self._closed = False

    # --- connecting --------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 5.0,
        linger: float = 2.0,
        publish_hwm: int = 10_000,
        subscribe_hwm: int = 10_000,
        curve: Optional[Curve] = None,
        user: Optional[str] = None,
        password: Optional[str] = None,
    ) -> "Client":
        """Connects to the broker whose main endpoint is ``url``; see ``ClientOptions`` for
        the keywords (``curve=Curve.load("app.key", "broker.key.pub")`` logs in with CURVE,
        ``user="app", password="..."`` with a password).

        Raises ``ConnectError``: ``INVALID_URL`` for a malformed URL, ``TIMED_OUT`` when no
        broker answers within ``timeout`` (a refused login included); ``ValueError`` for
        both kinds of login at once.
        """
        login = login_of(curve, user, password)
        options = ClientOptions(timeout, linger, publish_hwm, subscribe_hwm, login)
        return cls.connect_with(url, options)

    @classmethod
    def connect_with(cls, url: str, options: ClientOptions) -> "Client":
        """``connect`` with an options value."""
        if not valid_url(url):
            raise ConnectError(
                ConnectErrorKind.INVALID_URL, f"{url!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
            )
        unknown = BrokerInfo("", url, "", "", "")
        client = cls(zmq.Context(), unknown, options)
        try:
            info = client.request(INFO_SERVICE, None)
        except RequestError as e:
            # The only message queued is the unanswered zhub.info request: drop it, or the
            # linger would follow the timeout.
            client.close(linger=0)
            if e.kind is RequestErrorKind.TIMED_OUT:
                raise ConnectError(
                    ConnectErrorKind.TIMED_OUT, f"no broker answered at {url} within {options.timeout}s"
                ) from None
            kind = ConnectErrorKind.TRANSPORT if e.kind is RequestErrorKind.TRANSPORT else ConnectErrorKind.PROTOCOL
            raise ConnectError(kind, url) from e
        try:
            client._info = BrokerInfo(
                version=info["version"],
                main=url,
                publish=connectable(info["publish"], url),
                subscribe=connectable(info["subscribe"], url),
                deliver=connectable(info.get("deliver", ""), url),
                max_message=info.get("max_message", 0),
            )
        except (KeyError, TypeError) as e:
            client.close(linger=0)
            raise ConnectError(ConnectErrorKind.PROTOCOL, f"{url}: zhub.info reply not understood") from e
        return client

    def sibling(self) -> "Client":
        """Another client of the same broker, for another thread: sockets, publisher id and
        clock of its own, sharing this client's ZeroMQ context (which is thread-safe) and
        endpoints, so that it needs no ``zhub.info`` round trip."""
        sibling = Client(self._context, self._info, self._options, owns_context=False)
        sibling._home = self._home
        return sibling

    def at(self, broker: str) -> "Client":
        """Another client of this client's broker whose requests to built-in services
        (``zhub.kv``, ``zhub.log``, ``zhub.group``, ``zhub.stats``...) are served by the peer
        broker named ``broker``, through the cluster link, as ``Client::at`` in Rust.
        Requests to other services, publishing and subscribing stay as they are."""
        client = self.sibling()
        client._home = broker
        return client

    @property
    def info(self) -> BrokerInfo:
        """The broker's version and endpoints, as learned at connect."""
        return self._info

    @property
    def options(self) -> ClientOptions:
        """The options this client was made with."""
        return self._options

    @property
    def timeout(self) -> float:
        """The client's default timeout in seconds."""
        return self._options.timeout

    @property
    def publisher_id(self) -> int:
        """This client's publisher id, in the header of every message it publishes."""
        return self._publisher_id

    @property
    def lamport(self) -> int:
        """The client's Lamport clock (shared with its subscribers)."""
        return self._clock.get()

    @property
    def context(self) -> zmq.Context:
        """The ZeroMQ context this client's sockets live in."""
        return self._context

    def close(self, linger: Optional[float] = None) -> None:
        """Closes the client's sockets (keeping unsent messages up to ``linger`` seconds,
        the client's option by default) and its context when it owns one.

        A context ends only once every socket in it is closed: close the ``sibling``
        clients made from this one (and the groups that hold them) first.
        """
        if self._closed:
            return
        self._closed = True
        ms = _millis(self._options.linger if linger is None else linger)
        for subscriber in self._subscribers:
            subscriber.close()
        if self._publisher is not None:
            self._publisher.socket.close(ms)
        self._main.close(ms)
        if self._owns_context:
            self._context.term()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(broker={self._info.main!r}, publisher_id={self._publisher_id:016x})"

    # --- built-ins ---------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The broker's counters (``zhub.stats``), as the MessagePack map it sends."""
        return self.request(STATS_SERVICE, None)

    def services(self) -> list[dict[str, Any]]:
        """The services, their workers, queues and latency histograms (``zhub.services``)."""
        return self.request(SERVICES_SERVICE, None)

    def storage_stats(self) -> dict[str, Any]:
        """Key-value and event log requests by operation, and sync time histograms
        (``zhub.storage``)."""
        return self.request(STORAGE_SERVICE, None)

    def groups(self, prefix: str = "", after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of process groups (``zhub.group`` list): ``{"groups": [...], "more": bool}``,
        each with its ``view`` (members by rank), ``token_holder`` and waiting counts. Pass
        the last group's name as ``after`` for the next page."""
        request: dict[str, Any] = {"op": "list", "prefix": prefix, "limit": limit}
        if after is not None:
            request["after"] = after
        reply = self.request(GROUP_SERVICE, request)
        return {"groups": reply["groups"], "more": reply["more"]}

    @property
    def kv(self) -> "Kv":
        """The key-value store through this client's broker."""
        from .kv import Kv

        return Kv(self)

    @property
    def log(self) -> "Log":
        """The event log through this client's broker."""
        from .log import Log

        return Log(self)

    def call_builtin(self, service: str, request: Any, timeout: Optional[float] = None) -> Any:
        """One request to a built-in service with MessagePack bodies (``zhub.kv``,
        ``zhub.log``): encodes ``request``, waits up to ``timeout``, decodes the reply."""
        try:
            body = wire.encode_body(request)
        except Exception as e:
            raise RequestError(RequestErrorKind.CODEC, f"{service} request") from e
        reply = self.request_bytes(service, body, timeout=timeout)
        try:
            return wire.decode_body(reply)
        except Exception as e:
            raise RequestError(RequestErrorKind.PROTOCOL, f"{service} reply") from e

    # --- requests ----------------------------------------------------------------------------

    def request(self, service: str, value: Any, *, timeout: Optional[float] = None) -> Any:
        """Sends ``value`` (MessagePack) to ``service`` and decodes its MessagePack reply.

        Raises ``RequestError`` whose ``kind`` tells no service, busy, timed out, worker
        failed, bad request and codec errors apart.
        """
        try:
            body = wire.encode_body(value)
        except Exception as e:
            raise RequestError(RequestErrorKind.CODEC, "request body") from e
        reply = self.request_bytes(service, body, timeout=timeout)
        try:
            return wire.decode_body(reply)
        except Exception as e:
            raise RequestError(RequestErrorKind.CODEC, "reply body") from e

    def request_bytes(self, service: str, body: bytes, *, timeout: Optional[float] = None) -> bytes:
        """Sends raw ``body`` to ``service`` and returns the raw reply, waiting up to
        ``timeout`` seconds (the client's by default). Raises as ``request``."""
        frames = self.request_frames(service, [body], timeout=timeout)
        return frames[0] if frames else b""

    def request_frames(self, service: str, body: Sequence[bytes], *, timeout: Optional[float] = None) -> list[bytes]:
        """A request of several body frames; returns the reply's frames. Raises as
        ``request``."""
        timeout = self._options.timeout if timeout is None else timeout
        request_id = self._send(service, body, timeout)
        until = self._outstanding[request_id]
        while True:
            reply = self._next_reply(until)
            if reply is None:
                self._outstanding.pop(request_id, None)
                raise RequestError(RequestErrorKind.TIMED_OUT, f"{service}: no reply within {timeout}s")
            if reply.id == request_id:
                self._outstanding.pop(request_id, None)
                return _outcome(reply)
            if reply.id in self._outstanding:
                self._stash[reply.id] = reply
            # Otherwise a late reply to an abandoned request: discarded.

    def send_request_bytes(self, service: str, body: bytes, timeout: Optional[float] = None) -> int:
        """Sends a request without waiting for its reply (pipelining); returns the id that
        ``recv_reply`` reports with it. Raises ``RequestError`` (``BAD_REQUEST`` for a bad
        service name, ``TIMED_OUT`` when the broker does not take it)."""
        return self._send(service, [body], self._options.timeout if timeout is None else timeout)

    @property
    def in_flight(self) -> int:
        """Requests sent with ``send_request_bytes`` and not yet reported by ``recv_reply``."""
        return len(self._outstanding)

    def recv_reply(self) -> tuple[int, Union[bytes, RequestError]]:
        """Waits for the reply to any request in flight: its id and its body, or the
        ``RequestError`` saying why there is none. Raises ``RequestError``
        (``BAD_REQUEST``) when nothing is in flight."""
        while True:
            if self._stash:
                request_id, stashed = self._stash.popitem()
                self._outstanding.pop(request_id, None)
                return request_id, _outcome_first(stashed)
            if not self._outstanding:
                raise RequestError(RequestErrorKind.BAD_REQUEST, "no request in flight")
            request_id, until = min(self._outstanding.items(), key=lambda item: item[1])
            reply = self._next_reply(until)
            if reply is None:
                self._outstanding.pop(request_id, None)
                return request_id, RequestError(RequestErrorKind.TIMED_OUT, "no reply in time")
            if self._outstanding.pop(reply.id, None) is not None:
                return reply.id, _outcome_first(reply)

    def _send(self, service: str, body: Sequence[bytes], timeout: float) -> int:
        why = wire.check_service(service)
        if why:
            raise RequestError(RequestErrorKind.BAD_REQUEST, f"{service!r}: {why}")
        size = sum(len(frame) for frame in body)
        if self._info.max_message and size > self._info.max_message:
            # Refused here: the broker answers 413 only up to twice its limit and drops the
            # connection of a sender beyond that, which would leave this request unanswered.
            raise RequestError(
                RequestErrorKind.TOO_LARGE,
                f"{service}: a request of {size} bytes; the broker takes at most {self._info.max_message}",
            )
        request_id = self._next_request_id
        self._next_request_id = (self._next_request_id + 1) % (1 << 64)
        on_wire = f"{service}@{self._home}" if self._home and service.startswith("zhub.") else service
        frames = [b"", *wire.encode_request(request_id, on_wire, int(timeout * 1000), body)]
        try:
            self._main.send_multipart(frames, copy=False)
        except zmq.Again:
            raise RequestError(
                RequestErrorKind.TIMED_OUT, f"{service}: the broker did not take the request within {timeout}s"
            ) from None
        except zmq.ZMQError as e:
            raise RequestError(RequestErrorKind.TRANSPORT, service) from e
        # The broker answers at the deadline itself ("no service" or "timed out"); the grace
        # leaves time for that answer to arrive before this client gives up locally.
        grace = 0.25 + timeout / 20
        self._outstanding[request_id] = time.monotonic() + timeout + grace
        return request_id

    def _next_reply(self, until: float) -> Optional[wire.Reply]:
        while True:
            try:
                frames = self._main.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                frames = None
            except zmq.ZMQError as e:
                raise RequestError(RequestErrorKind.TRANSPORT, "recv") from e
            if frames is not None:
                rest = frames[1:] if frames and frames[0] == b"" else frames
                try:
                    return wire.decode_reply(rest)
                except ValueError:
                    continue  # A malformed reply from the broker: discarded.
            left = until - time.monotonic()
            if left <= 0:
                return None
            try:
                self._main.poll(max(1, _millis(left)), zmq.POLLIN)
            except zmq.ZMQError as e:
                raise RequestError(RequestErrorKind.TRANSPORT, "poll") from e

    # --- publishing --------------------------------------------------------------------------

    def _the_publisher(self) -> _Publisher:
        if self._publisher is None:
            self._publisher = _Publisher(
                self._context, self._info.publish, self._publisher_id, self._info.max_message, self._options
            )
        return self._publisher

    def publish(self, topic: str, value: Any) -> None:
        """Publishes ``value``, encoded as MessagePack, on ``topic``.

        The first publish connects to the publish endpoint and waits until the broker takes
        messages, so even the first one is not lost. Raises ``PublishError``.
        """
        try:
            body = wire.encode_body(value)
        except Exception as e:
            raise PublishError(PublishErrorKind.CODEC, f"message on {topic!r}") from e
        self._the_publisher().publish(topic, wire.ENCODING_MSGPACK, body, self._clock)

    def publish_bytes(self, topic: str, body: bytes) -> None:
        """Publishes raw ``body`` on ``topic``. Raises ``PublishError``."""
        self._the_publisher().publish(topic, wire.ENCODING_RAW, bytes(body), self._clock)

    def publish_reserved(self, topic: str, body: bytes) -> None:
        """Publishes raw bytes on a topic reserved for zhub's own features (``$...``, such
        as a process group's), numbered like a user message."""
        self._the_publisher().publish_sequenced(topic, wire.ENCODING_RAW, bytes(body), self._clock)

    # --- subscribing -------------------------------------------------------------------------

    def subscribe(self, *prefixes: str) -> Subscriber:
        """Subscribes to every topic starting with one of ``prefixes`` (``""``: every topic;
        no prefix at all: every topic too).

        Returns only once the subscription is live end to end: a probe sent through the
        broker on a topic of this subscriber's own has come back, so anything published after
        this returns is delivered. Raises ``SubscribeError``.
        """
        if len(prefixes) == 1 and isinstance(prefixes[0], (list, tuple)):
            prefixes = tuple(prefixes[0])
        if not prefixes:
            prefixes = ("",)
        for prefix in prefixes:
            why = wire.check_prefix(prefix)
            if why:
                raise SubscribeError(SubscribeErrorKind.INVALID_TOPIC, f"{prefix!r}: {why}")
        socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, self._options.subscribe_hwm)
        self._options.secure(socket)
        socket.connect(self._info.deliver)
        # The address first: the broker sends this subscriber's copies to it, and learns of the
        # prefixes that follow (protocol/src/delivery.rs).
        subscriber_id = wire.random_u64()
        socket.setsockopt(zmq.SUBSCRIBE, wire.address(subscriber_id))
        for prefix in prefixes:
            socket.setsockopt(zmq.SUBSCRIBE, wire.interest(subscriber_id, prefix.encode()))
        probe_topic = f"{wire.PROBE_PREFIX}{wire.random_u64():016x}"
        probe_interest = wire.interest(subscriber_id, probe_topic.encode())
        socket.setsockopt(zmq.SUBSCRIBE, probe_interest)
        subscriber = Subscriber(socket, subscriber_id, self._clock)
        try:
            self._confirm(subscriber, probe_topic)
        except BaseException:
            socket.close(0)
            raise
        socket.setsockopt(zmq.UNSUBSCRIBE, probe_interest)
        self._subscribers.append(subscriber)
        return subscriber

    def _confirm(self, subscriber: Subscriber, probe_topic: str) -> None:
        """Sends probes until one comes back, keeping user messages that arrive meanwhile;
        retries with a growing interval, as a probe sent before the broker applied the
        subscription is dropped there."""
        timeout = self._options.timeout
        deadline = time.monotonic() + timeout
        nonce = wire.random_u64().to_bytes(8, "big")
        interval = 0.005
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise SubscribeError(
                    SubscribeErrorKind.TIMED_OUT, f"no probe came back through the broker within {timeout}s"
                )
            try:
                self._the_publisher().publish_system(probe_topic, nonce, self._clock)
            except PublishError as e:
                raise SubscribeError(SubscribeErrorKind.TRANSPORT, "cannot send probe") from e
            wait_until = min(now + interval, deadline)
            interval = min(interval * 2, _PROBE_MAX_INTERVAL)
            while True:
                left = wait_until - time.monotonic()
                if left <= 0:
                    break
                if not subscriber._socket.poll(max(1, _millis(left)), zmq.POLLIN):
                    continue
                while True:
                    got = subscriber._take()
                    if got is False:
                        break
                    if isinstance(got, Message):
                        subscriber._pending.append(got)
                    elif got == (probe_topic, nonce):
                        return

    def subscribe_with(self, prefixes: Sequence[str], callback: Callable[[Message], None]) -> Subscription:
        """Subscribes like ``subscribe`` and calls ``callback`` with each message on a thread
        of the subscription's own, until ``unregister``."""
        subscriber = self.subscribe(*prefixes)
        self._subscribers.remove(subscriber)
        return Subscription(self._context, subscriber, callback)


def _outcome(reply: wire.Reply) -> list[bytes]:
    if reply.status == wire.Status.OK:
        return reply.body
    kind = _STATUS_KINDS.get(reply.status, RequestErrorKind.INTERNAL)  # type: ignore[call-overload]
    raise RequestError(kind, reply.reason())


def _outcome_first(reply: wire.Reply) -> Union[bytes, RequestError]:
    try:
        frames = _outcome(reply)
    except RequestError as e:
        return e
    return frames[0] if frames else b""
