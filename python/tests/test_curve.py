"""CURVE logins from Python: ``Curve.load`` reads the key files ``zhub keygen`` writes, and a
client and a worker use them on every socket against a broker whose auth file sets
``[curve]``; an unknown key is refused while the broker serves others."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
import zmq

from conftest import CLI, start_broker

import zhub
from zhub import ConnectErrorKind, RequestErrorKind

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="this pyzmq's libzmq has no CURVE")


def keygen(dir: Path, name: str) -> str:
    """``zhub keygen --out dir/name``; the public key."""
    out = subprocess.run([CLI, "keygen", "--out", str(dir / name)], capture_output=True, check=True, timeout=20)
    return out.stdout.decode().split('"')[1]


@pytest.fixture
def curve_broker(tmp_path: Path):
    keygen(tmp_path, "broker.key")
    app = keygen(tmp_path, "app.key")
    worker = keygen(tmp_path, "worker.key")
    keygen(tmp_path, "stranger.key")
    (tmp_path / "auth.toml").write_text(
        "[curve]\n"
        + (tmp_path / "broker.key").read_text()
        + f'[users.app]\ncurve_keys = ["{app}"]\n'
        + '[users.app.allow]\npublish = ["app.*"]\nsubscribe = ["app.*"]\nrequest = ["upper"]\n'
        + 'kv_read = ["app/*"]\nkv_write = ["app/*"]\n'
        + f'[users.worker]\ncurve_keys = ["{worker}"]\n[users.worker.allow]\nserve = ["upper"]\n'
    )
    b = start_broker(tmp_path, "--auth", str(tmp_path / "auth.toml"))
    try:
        yield b
    finally:
        b.stop()


def test_a_keyed_client_and_worker_use_every_plane(curve_broker):
    dir = curve_broker.dir
    server = dir / "broker.key.pub"
    worker = zhub.Worker.connect(curve_broker.url, "upper", curve=zhub.Curve.load(dir / "worker.key", server))
    thread = threading.Thread(target=worker.run, args=(bytes.upper,), daemon=True)
    thread.start()
    try:
        curve = zhub.Curve.load(dir / "app.key", server)
        assert curve.secret not in repr(curve)
        with zhub.Client.connect(curve_broker.url, curve=curve) as client:
            assert client.request_bytes("upper", b"hi") == b"HI"
            with pytest.raises(zhub.RequestError) as caught:
                client.request_bytes("payments", b"x")
            assert caught.value.kind is RequestErrorKind.FORBIDDEN
            assert client.kv.put("app/color", "blue") >= 0
            assert client.kv.get("app/color") == "blue"
            with pytest.raises(zhub.RequestError) as caught:
                client.kv.put("other", 1)
            assert caught.value.kind is RequestErrorKind.FORBIDDEN
            sub = client.subscribe("app.")
            client.publish("app.x", 1)
            message = sub.recv(timeout=10)
            assert message is not None and message.topic == "app.x"
    finally:
        worker.stop()
        thread.join(timeout=5)
        worker.close()


def test_an_unknown_key_is_refused_and_others_are_served(curve_broker):
    dir = curve_broker.dir
    server = dir / "broker.key.pub"
    with pytest.raises(zhub.ConnectError) as caught:
        zhub.Client.connect(curve_broker.url, timeout=0.3, curve=zhub.Curve.load(dir / "stranger.key", server))
    assert caught.value.kind is ConnectErrorKind.TIMED_OUT
    with pytest.raises(zhub.ConnectError):
        zhub.Client.connect(curve_broker.url, timeout=0.3)
    with pytest.raises(ValueError, match="public-key file"):
        zhub.Curve.load(server, server)
    with zhub.Client.connect(curve_broker.url, curve=zhub.Curve.load(dir / "app.key", server)) as client:
        assert client.kv.put("app/still", 1) >= 0
