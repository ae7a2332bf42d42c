"""``MajordomoClient``: a plain Majordomo (7/MDP 0.1) client, for brokers that speak only MDP.

zhub's own ``Client`` speaks the native ZHC01 protocol (request ids, deadlines, status
codes). A Majordomo client carries none of those: the broker gives its requests the
``--mdp-timeout`` deadline and answers an error with silence, so this client waits up to
its ``timeout`` and says ``TIMED_OUT``. Use it to reach a service through any Majordomo
broker, or to check with ``mmi.service`` whether a service has workers (frames as in
``protocol/src/mdp.rs``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import zmq

from . import _wire as wire
from .client import DEFAULT_URL, valid_url
from .errors import ConnectError, ConnectErrorKind, RequestError, RequestErrorKind

MMI_SERVICE = "mmi.service"
"""The Majordomo service-discovery service."""


class MajordomoClient:
    """A Majordomo client on a DEALER socket: one request at a time, each answered or timed
    out (the socket is then replaced, so that a late reply cannot answer the next request)."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 5.0) -> None:
        if not valid_url(url):
            raise ConnectError(ConnectErrorKind.INVALID_URL, repr(url))
        self.url = url
        self.timeout = timeout
        self._context = zmq.Context()
        self._socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.url)
        return socket

    def request(self, service: str, body: Sequence[bytes], timeout: Optional[float] = None) -> list[bytes]:
        """Sends ``body`` frames to ``service`` and returns the reply's body frames.

        Raises ``RequestError`` (``BAD_REQUEST`` for a bad name, ``TIMED_OUT`` when no reply
        comes within ``timeout``, ``PROTOCOL`` for a reply that is not MDP's).
        """
        why = wire.check_service(service)
        if why:
            raise RequestError(RequestErrorKind.BAD_REQUEST, f"{service!r}: {why}")
        wait = self.timeout if timeout is None else timeout
        self._socket.send_multipart([b"", wire.MDP_CLIENT, service.encode(), *body])
        if not self._socket.poll(max(1, int(wait * 1000)), zmq.POLLIN):
            self._socket.close(0)
            self._socket = self._connect()
            raise RequestError(RequestErrorKind.TIMED_OUT, f"{service}: no reply within {wait}s")
        frames = self._socket.recv_multipart()
        rest = frames[1:] if frames and frames[0] == b"" else frames
        if len(rest) < 2 or rest[0] != wire.MDP_CLIENT or rest[1] != service.encode():
            raise RequestError(RequestErrorKind.PROTOCOL, f"{service}: not an MDP reply")
        return rest[2:]

    def has_service(self, service: str) -> bool:
        """Whether ``service`` has workers, asked of ``mmi.service``."""
        (code, *_) = self.request(MMI_SERVICE, [service.encode()]) or [b""]
        if code not in (b"200", b"404"):
            raise RequestError(RequestErrorKind.PROTOCOL, f"mmi.service answered {code!r}")
        return code == b"200"

    def close(self) -> None:
        """Closes the socket and its context."""
        self._socket.close(0)
        self._context.term()

    def __enter__(self) -> "MajordomoClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MMI_SERVICE", "MajordomoClient"]
