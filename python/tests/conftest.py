"""Fixtures of the Python suite: a real ``zhub-broker`` process on ipc:// sockets in a
temporary directory, the ``zhub`` CLI beside it, and a hard deadline for every test.

``ZHUB_BROKER`` and ``ZHUB_CLI`` name the binaries (``.ci/run`` sets them); by default they
are looked for in the workspace's ``target/debug``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("ZHUB_BROKER", str(ROOT / "target" / "debug" / "zhub-broker"))
CLI = os.environ.get("ZHUB_CLI", str(ROOT / "target" / "debug" / "zhub"))

TEST_DEADLINE = int(os.environ.get("ZHUB_TEST_DEADLINE", "30"))
"""Seconds a test may run before it fails: SIGALRM raises in the test's main thread."""

ENDPOINTS = 4
"""How many "listening" lines a broker logs at start, one per endpoint."""


@dataclass
class BrokerProcess:
    """A ``zhub-broker`` child on ipc sockets in ``dir``."""

    process: subprocess.Popen
    dir: Path
    url: str

    def stop(self) -> None:
        """Kills the broker (SIGKILL) and reaps it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def cli(self, *args: str, input: Optional[bytes] = None, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
        """Runs ``zhub --url URL ARGS...`` to completion; its output is captured."""
        result = subprocess.run(
            [CLI, "--url", self.url, *args],
            input=input,
            capture_output=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"zhub {' '.join(args)} failed ({result.returncode}): {result.stderr.decode()}")
        return result

    def spawn_cli(self, *args: str) -> subprocess.Popen:
        """Starts ``zhub --url URL ARGS...`` in the background, stdout and stderr piped."""
        return subprocess.Popen(
            [CLI, "--url", self.url, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Unbuffered, so that select() on stdout sees every line not yet read.
            bufsize=0,
        )


def start_broker(dir: Path, *extra: str) -> BrokerProcess:
    """Starts the broker binary on ipc sockets in ``dir`` and returns once its four endpoints
    are bound (its "listening" log lines); an ERROR line or an exit before that fails."""
    ipc = lambda name: f"ipc://{dir / name}"  # noqa: E731
    command = [
        BROKER,
        "--listen", ipc("main.sock"),
        "--publish", ipc("pub.sock"),
        "--subscribe", ipc("sub.sock"),
        "--deliver", ipc("deliver.sock"),
        "--data-dir", str(dir / "data"),
        *extra,
    ]
    env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    assert process.stderr is not None
    listening = 0
    seen = []
    while listening < ENDPOINTS:
        line = process.stderr.readline().decode(errors="replace")
        seen.append(line)
        if not line or "ERROR" in line:
            process.kill()
            process.wait()
            raise AssertionError(f"the broker did not start: {''.join(seen)}")
        if "listening" in line:
            listening += 1
    # Keep draining stderr so that the broker never blocks on a full pipe.
    stderr = process.stderr
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()
    return BrokerProcess(process, dir, f"ipc://{dir / 'main.sock'}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of this test's own, killed at its end."""
    b = start_broker(tmp_path)
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    """Fails a test that runs longer than ``TEST_DEADLINE`` seconds.

    SIGALRM interrupts the main thread wherever it waits (pyzmq's polls included) and raises
    there; a plugin would do the same with one more dependency.
    """

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"test exceeded its deadline of {TEST_DEADLINE}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def read_line(process: subprocess.Popen, timeout: float) -> Optional[bytes]:
    """The next line of ``process``'s stdout, or ``None`` when none comes within ``timeout``."""
    import select

    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        return None
    return process.stdout.readline()


def request_when_served(client, service: str, body: bytes, within: float = 10) -> bytes:
    """``client.request_bytes(service, body)``, retried while the broker answers "no such
    service" (a worker started in another process has not registered yet), up to ``within``
    seconds."""
    import time

    import zhub

    deadline = time.monotonic() + within
    while True:
        try:
            return client.request_bytes(service, body, timeout=0.5)
        except zhub.RequestError as e:
            if e.kind is not zhub.RequestErrorKind.NO_SERVICE or time.monotonic() > deadline:
                raise


EXAMPLES = os.environ.get("ZHUB_EXAMPLES", str(ROOT / "target" / "debug" / "examples"))
"""Where the Rust examples' binaries are (``cargo build -p zhub-examples --example NAME``)."""


def example(name: str) -> str:
    """The path of the Rust example ``name``; fails the test, saying how to build it, when
    it is missing."""
    path = Path(EXAMPLES) / name
    if not path.exists():
        pytest.fail(f"{path} is missing: cargo build -p zhub-examples --example {name}")
    return str(path)
