"""zhub: the Python client of the zhub message broker.

A second implementation of zhub's wire protocol (the Rust crate ``zhub-protocol`` documents
it), on pyzmq and msgpack:

- ``Client``: requests with deadlines, publish/subscribe with zhub's header (publisher,
  sequence, Lamport clock) and no slow-joiner loss, the key-value store (``client.kv``,
  with watches and a local ``Replica``) and the event log (``client.log``: streams, reads,
  tails, consumer groups, durable topics);
- ``Worker``: serves a named service (Majordomo on the wire), with credit, heartbeats and
  reconnection; ``MajordomoClient`` is a plain MDP client for brokers that speak only MDP;
- ``Group``: process groups (ranks, views, a mailbox, barriers, synchronous sends, the
  token-ring critical section), shared with Rust members;
- ``Process``/``ProcessManager`` (seed 000's event bus) and ``Com`` (seed 001's
  communicator), the shapes of the middleware projects zhub succeeds, on groups;
- ``MessageBusClient``, ``KeyValueClient``, ``TaskQueueClient``/``TaskQueueWorker``,
  ``EventSource`` and ``MessageBusBroker``: the shapes PyDistributed programs use
  (``zhub.compat``);
- errors with a matchable ``kind`` (``RequestError.kind is RequestErrorKind.TIMED_OUT``).

::

    import zhub

    client = zhub.Client.connect("tcp://127.0.0.1:5555")
    sub = client.subscribe("greetings")
    client.publish("greetings", {"hello": "world"})
    print(sub.recv(timeout=5).decode())
"""

from ._wire import BusHeader, Status
from .client import (
    DEFAULT_URL,
    BrokerInfo,
    Client,
    ClientOptions,
    Curve,
    Message,
    Plain,
    Subscriber,
    Subscription,
)
from .com import Com, ComMessage
from .compat import (
    EventSource,
    KeyValueClient,
    KeyValueStore,
    MessageBusBroker,
    MessageBusClient,
    TaskQueueClient,
    TaskQueueWorker,
)
from .errors import (
    ConnectError,
    ConnectErrorKind,
    GroupError,
    GroupErrorKind,
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
from .group import Group, GroupMessage, LockGuard, View
from .kv import CasOutcome, Kv, KvChange, KvEntry, Mismatch, Replica, Stored, Watcher
from .log import Consumer, Log, Record, StreamSummary
from .mdp import MajordomoClient
from .process import Process, ProcessManager
from .worker import Request, Worker

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "BrokerInfo",
    "BusHeader",
    "CasOutcome",
    "Client",
    "ClientOptions",
    "Curve",
    "Plain",
    "Com",
    "ComMessage",
    "ConnectError",
    "ConnectErrorKind",
    "Consumer",
    "EventSource",
    "Group",
    "GroupError",
    "GroupErrorKind",
    "GroupMessage",
    "KeyValueClient",
    "KeyValueStore",
    "Kv",
    "KvChange",
    "KvEntry",
    "LockGuard",
    "MajordomoClient",
    "Log",
    "Message",
    "MessageBusBroker",
    "MessageBusClient",
    "Mismatch",
    "Process",
    "ProcessManager",
    "PublishError",
    "PublishErrorKind",
    "RecvError",
    "Record",
    "RecvErrorKind",
    "Replica",
    "Request",
    "RequestError",
    "RequestErrorKind",
    "Status",
    "Stored",
    "StreamSummary",
    "SubscribeError",
    "SubscribeErrorKind",
    "TaskQueueClient",
    "TaskQueueWorker",
    "Subscriber",
    "Subscription",
    "View",
    "Watcher",
    "Worker",
    "WorkerError",
    "WorkerErrorKind",
    "ZhubError",
]
