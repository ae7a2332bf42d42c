"""Errors of zhub's operations: one exception type per operation, each with a matchable ``kind``.

They mirror the Rust client's ``client/src/error.rs``: ``RequestError.kind`` is a
``RequestErrorKind`` (``TIMED_OUT``, ``NO_SERVICE``, ``BUSY``, ...), and so on. The message
adds the details; ``__cause__`` holds the underlying error where there is one::

    try:
        client.request("nosuch", None)
    except RequestError as e:
        if e.kind is RequestErrorKind.NO_SERVICE:
            ...
"""

from __future__ import annotations

from enum import Enum


class ConnectErrorKind(Enum):
    """Why ``Client.connect`` failed."""

    INVALID_URL = "invalid broker URL"
    TIMED_OUT = "broker did not answer"
    PROTOCOL = "protocol error"
    TRANSPORT = "transport error"


class RequestErrorKind(Enum):
    """Why a request failed."""

    NO_SERVICE = "no such service"
    BUSY = "service busy"
    TIMED_OUT = "request timed out"
    WORKER_FAILED = "worker failed"
    BAD_REQUEST = "bad request"
    TOO_LARGE = "request too large"
    FORBIDDEN = "forbidden"
    REJECTED = "rejected"
    INTERNAL = "broker internal error"
    CODEC = "body codec error"
    PROTOCOL = "protocol error"
    TRANSPORT = "transport error"


class PublishErrorKind(Enum):
    """Why a publish failed."""

    INVALID_TOPIC = "invalid topic"
    CODEC = "body codec error"
    TOO_LARGE = "message too large"
    TIMED_OUT = "publish timed out"
    TRANSPORT = "transport error"


class SubscribeErrorKind(Enum):
    """Why a subscription could not be made."""

    INVALID_TOPIC = "invalid topic prefix"
    TIMED_OUT = "subscription not confirmed"
    TRANSPORT = "transport error"


class RecvErrorKind(Enum):
    """Why receiving from a subscriber failed."""

    TRANSPORT = "transport error"
    CODEC = "body codec error"


class WorkerErrorKind(Enum):
    """Why a worker could not start or went on no longer."""

    INVALID_URL = "invalid broker URL"
    INVALID_SERVICE = "invalid service name"
    INVALID_OPTION = "invalid option"
    STOPPED = "worker stopped"
    TRANSPORT = "transport error"


class GroupErrorKind(Enum):
    """Why a process group operation failed."""

    NO_SUCH_RANK = "no such rank"
    MEMBER_GONE = "member gone"
    TIMED_OUT = "group operation timed out"
    EXPELLED = "member expelled"
    BAD_REQUEST = "bad request"
    REJECTED = "rejected"
    CODEC = "body codec error"
    PROTOCOL = "protocol error"
    INVALID_OPTION = "invalid option"
    TRANSPORT = "transport error"


class ZhubError(Exception):
    """Base of every zhub error: ``kind`` says what went wrong, ``detail`` adds the rest."""

    kind: Enum

    def __init__(self, kind: Enum, detail: str = "") -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)


class ConnectError(ZhubError):
    """A connect failed; ``kind`` is a ``ConnectErrorKind``."""

    kind: ConnectErrorKind


class RequestError(ZhubError):
    """A request failed; ``kind`` is a ``RequestErrorKind``."""

    kind: RequestErrorKind


class PublishError(ZhubError):
    """A publish failed; ``kind`` is a ``PublishErrorKind``."""

    kind: PublishErrorKind


class SubscribeError(ZhubError):
    """A subscribe failed; ``kind`` is a ``SubscribeErrorKind``."""

    kind: SubscribeErrorKind


class RecvError(ZhubError):
    """A subscriber's receive failed; ``kind`` is a ``RecvErrorKind``."""

    kind: RecvErrorKind


class WorkerError(ZhubError):
    """A worker failed; ``kind`` is a ``WorkerErrorKind``."""

    kind: WorkerErrorKind


class GroupError(ZhubError):
    """A process group operation failed; ``kind`` is a ``GroupErrorKind``."""

    kind: GroupErrorKind
