"""Two peered brokers: a Python client of one reaches the other's store by naming it, and is
served by a worker connected to the other."""

from __future__ import annotations

import time
from pathlib import Path

from zhub import Client

from conftest import start_broker


def test_a_peers_store_and_services_are_reached_through_the_link(tmp_path: Path) -> None:
    dir_a, dir_b = tmp_path / "a", tmp_path / "b"
    dir_a.mkdir()
    dir_b.mkdir()
    cluster_a = f"ipc://{dir_a / 'cluster.sock'}"
    a = start_broker(dir_a, "--name", "a", "--cluster", cluster_a, "--cluster-heartbeat", "100ms")
    b = start_broker(
        dir_b, "--name", "b", "--cluster", f"ipc://{dir_b / 'cluster.sock'}", "--peer", cluster_a,
        "--cluster-heartbeat", "100ms",
    )
    try:
        client = Client.connect(a.url)
        while not any(link["state"] == "up" for link in client.request("zhub.peers", None)["links"]):
            time.sleep(0.01)
        remote = client.at("b")
        remote.kv.put("where", "kept on b")
        assert Client.connect(b.url).kv.get("where") == "kept on b"
        assert client.kv.get("where") is None, "a's own store never saw it"
        assert remote.request("zhub.info", None)["name"] == "b"

        # A service served only on b answers a client of a.
        worker = b.spawn_cli("serve", "echo.b", "--echo")
        try:
            assert client.request_bytes("echo.b", b"across", timeout=20) == b"across"
        finally:
            worker.kill()
            worker.wait()
    finally:
        b.stop()
        a.stop()
