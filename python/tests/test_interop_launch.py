"""``zhub launch`` (Rust) starting Python members: each finds its group with
``Group.join_launched``, and the launcher prefixes their output with their rank."""

from __future__ import annotations

import sys

LAUNCHED = """
import os, zhub
client = zhub.Client.connect(os.environ["ZHUB_URL"])
group = zhub.Group.join_launched(client)
assert group is not None, "not started by a launcher"
group.publish(group.rank)
got = sorted(group.recv(timeout=10).decode() for _ in range(group.size))
group.barrier(timeout=10)
print(f"rank {group.rank} of {group.size} saw {got}", flush=True)
group.leave()
client.close()
"""


def test_zhub_launch_starts_a_group_of_python_members(broker, tmp_path):
    script = tmp_path / "member.py"
    script.write_text(LAUNCHED)
    out = broker.cli("launch", "3", "--", sys.executable, str(script), timeout=30)
    lines = out.stdout.decode().splitlines()
    for rank in range(3):
        assert any(line.endswith(f"rank {rank} of 3 saw [0, 1, 2]") for line in lines), lines


def test_join_launched_is_none_outside_a_launcher(broker, monkeypatch):
    import zhub

    monkeypatch.delenv("ZHUB_GROUP", raising=False)
    with zhub.Client.connect(broker.url) as client:
        assert zhub.Group.join_launched(client) is None
