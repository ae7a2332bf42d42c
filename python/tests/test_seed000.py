"""Seed 000's event-bus middleware on zhub: ``Process`` subclasses with ``process(message_box)``
started by ``ProcessManager().add_process(n, cls, **params)``, and its dice game."""

from __future__ import annotations

import random
import threading

import zhub


class Replica(zhub.Process):
    """Seed 000's data replication: every process keeps a copy; process 0 changes it and
    tells the others."""

    def __init__(self, process_id: int, bus_size: int, initial: int, updated: threading.Condition):
        super().__init__(process_id, bus_size)
        self.value = initial
        self.updated = updated

    def on_start(self) -> None:
        if self.process_id == 0:
            self.value = 42
            self.com.broadcast({"set": 42})

    def process(self, message_box: zhub.ComMessage) -> None:
        assert message_box.sender == 0
        with self.updated:
            self.value = message_box.payload["set"]
            self.updated.notify_all()


def test_processes_react_to_messages_in_process(broker):
    updated = threading.Condition()
    manager = zhub.ProcessManager(broker.url)
    processes = manager.add_process(4, Replica, initial=0, updated=updated)
    try:
        assert [p.process_id for p in processes] == [0, 1, 2, 3]
        assert all(p.bus_size == 4 for p in processes)
        assert [p.com.getMyId() for p in processes] == [0, 1, 2, 3]
        with updated:
            assert updated.wait_for(lambda: all(p.value == 42 for p in processes), timeout=10)
    finally:
        manager.stop_process()
    assert manager.errors == []


class DiceGame(zhub.Process):
    """Seed 000's dice game: each round every process throws 1-100 and sends it to the
    others; the highest (the lowest id on a tie) takes the critical section to write its
    result; all synchronize before the next round."""

    def __init__(self, process_id: int, bus_size: int, rounds: int, board: list, throws: dict):
        super().__init__(process_id, bus_size)
        self.rounds, self.board, self.throws = rounds, board, throws

    def run(self) -> None:
        rng = random.Random()
        for round_ in range(self.rounds):
            mine = rng.randint(1, 100)
            self.throws[(round_, self.process_id)] = mine
            self.com.broadcast({"round": round_, "value": mine})
            values = {self.process_id: mine}
            while len(values) < self.bus_size:
                message = self.com.receive(timeout=10)
                assert message is not None, "a throw never came"
                assert message.payload["round"] == round_
                values[message.sender] = message.payload["value"]
            winner = max(values, key=lambda pid: (values[pid], -pid))
            if winner == self.process_id:
                self.com.requestSC()
                try:
                    self.board.append((round_, self.process_id, mine))
                finally:
                    self.com.releaseSC()
            self.com.synchronize()


def test_the_dice_game(broker):
    board: list = []
    throws: dict = {}
    manager = zhub.ProcessManager(broker.url)
    manager.add_process(4, DiceGame, rounds=3, board=board, throws=throws)
    try:
        assert manager.join(timeout=20)
    finally:
        manager.stop_process()
    assert manager.errors == []
    assert [r for r, _, _ in board] == [0, 1, 2]
    for round_, winner, value in board:
        thrown = {pid: v for (r, pid), v in throws.items() if r == round_}
        assert len(thrown) == 4
        assert value == max(thrown.values()) and thrown[winner] == value
        assert winner == min(pid for pid, v in thrown.items() if v == value)
