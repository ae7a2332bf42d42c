"""Password logins from Python: a client and a worker log in with ``user=`` and
``password=`` against a broker whose auth file gives them passwords; a wrong password is
refused while the broker serves others."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from conftest import BROKER, start_broker

import zhub
from zhub import ConnectErrorKind, RequestErrorKind

PASSWORD = "s3cret pass"


def hash_password(password: str) -> str:
    """``zhub-broker --hash-password``, reading the password on stdin."""
    out = subprocess.run(
        [BROKER, "--hash-password"], input=password.encode(), capture_output=True, check=True, timeout=20
    )
    return out.stdout.decode().strip().splitlines()[-1]


@pytest.fixture
def password_broker(tmp_path: Path):
    hashed = hash_password(PASSWORD)
    (tmp_path / "auth.toml").write_text(
        f'[users.app]\npassword = "{hashed}"\n'
        + '[users.app.allow]\npublish = ["app.*"]\nsubscribe = ["app.*"]\nrequest = ["upper"]\n'
        + 'kv_read = ["app/*"]\nkv_write = ["app/*"]\n'
        + f'[users.worker]\npassword = "{hashed}"\n[users.worker.allow]\nserve = ["upper"]\n'
    )
    b = start_broker(tmp_path, "--auth", str(tmp_path / "auth.toml"))
    try:
        yield b
    finally:
        b.stop()


def test_a_client_and_a_worker_log_in_with_passwords(password_broker):
    url = password_broker.url
    worker = zhub.Worker.connect(url, "upper", user="worker", password=PASSWORD)
    thread = threading.Thread(target=worker.run, args=(bytes.upper,), daemon=True)
    thread.start()
    try:
        with zhub.Client.connect(url, user="app", password=PASSWORD) as client:
            assert client.request_bytes("upper", b"hi") == b"HI"
            assert client.kv.put("app/color", "blue") >= 0
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


def test_a_wrong_password_is_refused_and_others_are_served(password_broker):
    url = password_broker.url
    with pytest.raises(zhub.ConnectError) as caught:
        zhub.Client.connect(url, timeout=0.3, user="app", password="wrong")
    assert caught.value.kind is ConnectErrorKind.TIMED_OUT
    with pytest.raises(ValueError, match="both"):
        zhub.Client.connect(url, user="app")
    plain = zhub.Plain("app", PASSWORD)
    assert PASSWORD not in repr(plain)
    with zhub.Client.connect(url, user="app", password=PASSWORD) as client:
        assert client.kv.get("app/none") is None
