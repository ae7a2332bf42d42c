"""A process group with a Rust member and a Python member: the Rust example sync_exchange
(rendezvous both ways, then a barrier) against a Python member playing the other rank."""

from __future__ import annotations

import os
import subprocess

from conftest import example

import zhub
from zhub import _wire as wire

ROUNDS = 3


def test_a_rust_member_and_a_python_member_meet_in_rendezvous(broker):
    name = f"mixed-{wire.random_u64():x}"
    env = dict(
        os.environ,
        ZHUB_URL=broker.url,
        ZHUB_GROUP=name,
        ZHUB_GROUP_SIZE="2",
        ZHUB_GROUP_MEMBER=f"{wire.random_u64():016x}",
        NO_COLOR="1",
    )
    rust = subprocess.Popen([example("sync_exchange")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with zhub.Client.connect(broker.url) as client:
            with zhub.Group.join(client, name, 2, join_timeout=10) as group:
                rank = group.rank
                assert rank in (0, 1)
                other = 1 - rank
                # The example's protocol: rank 0 asks in odd rounds, rank 1 in even ones.
                for round_ in range(1, ROUNDS + 1):
                    if (round_ % 2 == 1) == (rank == 0):
                        group.send_to_sync(other, f"question {round_} from rank {rank}", timeout=10)
                    else:
                        message = group.recv_from_sync(other, timeout=10)
                        assert message.decode() == f"question {round_} from rank {other}"
                        assert message.sender_rank == other
                group.barrier(timeout=10)
        out, err = rust.communicate(timeout=10)
    finally:
        if rust.poll() is None:
            rust.kill()
            rust.wait()
    assert rust.returncode == 0, err.decode()
    text = out.decode()
    assert f"rank {other}: done" in text
    assert f"from rank {rank}" in text
