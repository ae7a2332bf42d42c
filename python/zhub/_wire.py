"""Frame layouts of zhub's wire protocol: pure functions over bytes, no sockets.

This is the Python twin of the Rust crate ``zhub-protocol``; each section names the module
whose doc comment holds the byte-layout table it follows. Integers are big-endian.
"""

from __future__ import annotations

import os
import random
import struct
import threading
import time
import unicodedata
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Optional, Sequence

import msgpack

# --- identifiers (protocol/src/ids.rs) -------------------------------------------------------

_rng = random.SystemRandom()


def random_u64() -> int:
    """A random 64-bit id (publishers, requests, subscribers), from the OS's randomness."""
    return _rng.getrandbits(64)


# --- bodies (protocol/src/body.rs) -----------------------------------------------------------


def encode_body(value: Any) -> bytes:
    """Encodes ``value`` as a MessagePack body (bytes as ``bin``, str as ``str``)."""
    return msgpack.packb(value, use_bin_type=True)


def decode_body(data: bytes) -> Any:
    """Decodes a MessagePack body (``bin`` as bytes, ``str`` as str)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


# --- names (protocol/src/names.rs) -----------------------------------------------------------

MAX_SERVICE_LEN = 255
"""Longest service name, in bytes."""

MAX_TOPIC_LEN = 1024
"""Longest topic, in bytes."""


def _free_text(name: str, minimum: int, maximum: int) -> Optional[str]:
    """The rule of free-text names: ``minimum..=maximum`` bytes, no control characters."""
    size = len(name.encode())
    if size < minimum:
        return "empty"
    if size > maximum:
        return f"longer than {maximum} bytes"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "contains a control character"
    return None


def check_service(name: str) -> Optional[str]:
    """Why ``name`` is not a valid service name, or ``None`` when it is."""
    return _free_text(name, 1, MAX_SERVICE_LEN)


def check_topic(topic: str) -> Optional[str]:
    """Why ``topic`` is not a valid topic, or ``None`` when it is."""
    return _free_text(topic, 1, MAX_TOPIC_LEN)


def check_prefix(prefix: str) -> Optional[str]:
    """Why ``prefix`` is not a valid topic prefix (it may be empty), or ``None``."""
    return _free_text(prefix, 0, MAX_TOPIC_LEN)


# --- native requests (protocol/src/request.rs) -----------------------------------------------

SIGNATURE = b"ZHC01"
"""Signature frame of the native client protocol, version 1."""

_CMD_REQUEST = b"\x01"
_CMD_REPLY = b"\x02"


class Status(IntEnum):
    """The outcome of a request, as every reply carries it (HTTP's meanings)."""

    OK = 200
    BAD_REQUEST = 400
    FORBIDDEN = 403
    NO_SERVICE = 404
    TOO_LARGE = 413
    REJECTED = 422
    INTERNAL = 500
    WORKER_FAILED = 502
    BUSY = 503
    TIMED_OUT = 504


def encode_request(request_id: int, service: str, timeout_ms: int, body: Sequence[bytes]) -> list[bytes]:
    """The frames of a request, after the empty delimiter."""
    millis = max(0, min(int(timeout_ms), 0xFFFF_FFFF))
    return [
        SIGNATURE,
        _CMD_REQUEST,
        struct.pack(">Q", request_id),
        service.encode(),
        struct.pack(">I", millis),
        *body,
    ]


@dataclass(frozen=True)
class Reply:
    """A decoded reply: the id it answers, its status code and its body frames."""

    id: int
    status: int
    body: list[bytes]

    def reason(self) -> str:
        """The UTF-8 reason an error reply carries (lossily decoded)."""
        return self.body[0].decode(errors="replace") if self.body else ""


def decode_reply(frames: Sequence[bytes]) -> Reply:
    """Decodes a reply from its frames after the delimiter.

    Raises ``ValueError`` saying the first thing wrong.
    """
    if len(frames) < 2:
        raise ValueError(f"reply: expected at least 4 frames, got {len(frames)}")
    if frames[0] != SIGNATURE:
        raise ValueError(f"unknown protocol {frames[0]!r}")
    if frames[1] != _CMD_REPLY:
        raise ValueError(f"unknown command {frames[1]!r}")
    if len(frames) < 4:
        raise ValueError(f"reply: expected at least 4 frames, got {len(frames)}")
    if len(frames[2]) != 8:
        raise ValueError(f"request id: expected 8 bytes, got {len(frames[2])}")
    if len(frames[3]) != 2:
        raise ValueError(f"status: expected 2 bytes, got {len(frames[3])}")
    (request_id,) = struct.unpack(">Q", frames[2])
    (status,) = struct.unpack(">H", frames[3])
    return Reply(request_id, status, list(frames[4:]))


# --- the bus frame (protocol/src/bus.rs) -----------------------------------------------------

HEADER_VERSION = 1
"""The bus header version this package writes and reads."""

HEADER_LEN = 34
"""Size of the fixed header after the topic terminator."""

PROBE_PREFIX = "$zhub.probe."
"""Prefix of the topics a subscriber uses to prove its subscription is live."""

ENCODING_RAW = 0
"""Body encoding byte: opaque bytes."""

ENCODING_MSGPACK = 1
"""Body encoding byte: a MessagePack value."""

_HEADER = struct.Struct(">BBQQQQ")


@dataclass(frozen=True)
class BusHeader:
    """The fixed header every bus message carries."""

    publisher: int
    """Random id of the publishing client, fixed for its lifetime."""
    seq: int
    """Sequence number among the publisher's messages on the same topic, from 1."""
    timestamp_us: int
    """Wall-clock send time, microseconds since the Unix epoch."""
    lamport: int
    """The sender's Lamport clock, incremented for this send."""
    encoding: int
    """``ENCODING_RAW`` (0) or ``ENCODING_MSGPACK`` (1)."""


def encode_bus(topic: str, header: BusHeader, body: bytes) -> bytes:
    """Lays out one bus frame: topic, NUL, header, body."""
    return b"".join(
        (
            topic.encode(),
            b"\x00",
            _HEADER.pack(
                HEADER_VERSION,
                header.encoding,
                header.publisher,
                header.seq,
                header.timestamp_us,
                header.lamport,
            ),
            body,
        )
    )


def decode_bus(frame: bytes) -> tuple[str, BusHeader, bytes]:
    """Splits a bus frame into topic, header and body.

    Raises ``ValueError`` for a frame without a terminator, a short header, an unknown
    version or encoding.
    """
    end = frame.find(b"\x00", 0, MAX_TOPIC_LEN + 1)
    if end < 0:
        raise ValueError("no topic terminator")
    if end == 0:
        raise ValueError("empty topic")
    topic = frame[:end].decode()
    rest = memoryview(frame)[end + 1 :]
    if len(rest) < HEADER_LEN:
        raise ValueError(f"truncated header: expected {HEADER_LEN} bytes, got {len(rest)}")
    version, encoding, publisher, seq, ts, lamport = _HEADER.unpack_from(rest)
    if version != HEADER_VERSION:
        raise ValueError(f"unsupported header version {version}")
    if encoding not in (ENCODING_RAW, ENCODING_MSGPACK):
        raise ValueError(f"unknown body encoding {encoding}")
    return topic, BusHeader(publisher, seq, ts, lamport, encoding), bytes(rest[HEADER_LEN:])


# --- addressed delivery (protocol/src/delivery.rs) -------------------------------------------

ENVELOPE_LEN = 17
"""Length of an addressed message's envelope: mark, subscriber id, missed count."""


def address(subscriber: int) -> bytes:
    """The subscription that addresses envelopes to ``subscriber``."""
    return b"\x00" + struct.pack(">Q", subscriber)


def interest(subscriber: int, prefix: bytes) -> bytes:
    """The subscription that declares ``subscriber``'s interest in topics under ``prefix``."""
    return address(subscriber) + b"\x01" + prefix


def decode_envelope(frame: bytes) -> tuple[int, int]:
    """The subscriber id and missed count at the start of ``frame``.

    Raises ``ValueError`` when the frame is too short or does not start with the mark.
    """
    if len(frame) < ENVELOPE_LEN or frame[0] != 0:
        raise ValueError("not an envelope")
    subscriber, missed = struct.unpack_from(">QQ", frame, 1)
    return subscriber, missed


# --- Majordomo worker (protocol/src/mdp.rs) --------------------------------------------------

MDP_CLIENT = b"MDPC01"
"""Signature of MDP/Client 0.1."""

MDP_WORKER = b"MDPW01"
"""Signature of MDP/Worker 0.1."""

MDP_READY = b"\x01"
MDP_REQUEST = b"\x02"
MDP_REPLY = b"\x03"
MDP_HEARTBEAT = b"\x04"
MDP_DISCONNECT = b"\x05"
# A zhub extension of Majordomo: the worker could not serve the request (client, "", reason).
MDP_FAILED = b"\x06"

MAX_CREDIT = 1024
"""The most requests a worker may ask to have in flight at once."""


def encode_ready(service: str, credit: int) -> list[bytes]:
    """READY; credit 1 is the plain three-frame Majordomo READY."""
    frames = [MDP_WORKER, MDP_READY, service.encode()]
    if credit != 1:
        frames.append(struct.pack(">I", credit))
    return frames


# --- clocks (client/src/util.rs) -------------------------------------------------------------


def now_micros() -> int:
    """Microseconds since the Unix epoch."""
    return time.time_ns() // 1000


class LamportClock:
    """A Lamport clock shared by a client and its subscribers (safe across threads)."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def tick(self) -> int:
        """Advances for a send and returns the new value."""
        with self._lock:
            self._value += 1
            return self._value

    def observe(self, received: int) -> int:
        """Takes in a received clock: ``max(local, received) + 1``."""
        with self._lock:
            self._value = max(self._value, received) + 1
            return self._value

    def get(self) -> int:
        """The current value."""
        with self._lock:
            return self._value


def pid_tag() -> str:
    """A short tag for inproc endpoint names, unique per process and call."""
    return f"{os.getpid()}-{random_u64():016x}"
