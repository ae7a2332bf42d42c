"""zhub: the Python client of the zhub message broker.

A second implementation of zhub's wire protocol (the Rust crate ``zhub-protocol`` documents
it), on pyzmq and msgpack. This first part holds the frame codecs (``zhub._wire``) and the
errors every operation raises, each with a matchable ``kind``.
"""

from ._wire import BusHeader, Status
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
    WorkerError,
    WorkerErrorKind,
    ZhubError,
)

__version__ = "0.1.0"

__all__ = [
    "BusHeader",
    "ConnectError",
    "ConnectErrorKind",
    "PublishError",
    "PublishErrorKind",
    "RecvError",
    "RecvErrorKind",
    "RequestError",
    "RequestErrorKind",
    "Status",
    "SubscribeError",
    "SubscribeErrorKind",
    "WorkerError",
    "WorkerErrorKind",
    "ZhubError",
]
