"""Seed 000's dice game on zhub: N processes each throw 1-100 and send it to the others; the
highest throw (the lowest id on a tie) writes its result under the critical section; all
synchronize before the next round.

Start a broker, then run this script (ZHUB_URL selects the broker):

    cargo run --release --bin zhub-broker &
    python python/examples/dice_game.py [PLAYERS] [ROUNDS]
"""

import os
import random
import sys

import zhub


class Player(zhub.Process):
    def __init__(self, process_id, bus_size, rounds, board):
        super().__init__(process_id, bus_size)
        self.rounds = rounds
        self.board = board

    def run(self):
        for round_ in range(1, self.rounds + 1):
            mine = random.randint(1, 100)
            self.com.broadcast({"round": round_, "value": mine})
            values = {self.process_id: mine}
            while len(values) < self.bus_size:
                message = self.com.receive(timeout=30)
                values[message.sender] = message.payload["value"]
            winner = max(values, key=lambda pid: (values[pid], -pid))
            if winner == self.process_id:
                self.com.requestSC()
                self.board.append(f"round {round_}: P{self.process_id} wins with {mine} (clock {self.com.clock})")
                print(self.board[-1], flush=True)
                self.com.releaseSC()
            self.com.synchronize()


players = int(sys.argv[1]) if len(sys.argv) > 1 else 4
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
manager = zhub.ProcessManager(os.environ.get("ZHUB_URL", zhub.DEFAULT_URL))
board = []
manager.add_process(players, Player, rounds=rounds, board=board)
manager.join()
manager.stop_process()
sys.exit(1 if manager.errors else 0)
