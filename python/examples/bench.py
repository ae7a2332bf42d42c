"""Rough figures for the Python client: pub/sub throughput, request round trips, KV writes.

Start a broker, then run this script (ZHUB_URL selects the broker):

    cargo run --release --bin zhub-broker &
    python python/examples/bench.py

Figures depend on the machine and on the broker's build; compare runs on the same machine.
"""

import os
import threading
import time

import zhub

url = os.environ.get("ZHUB_URL", zhub.DEFAULT_URL)
N = int(os.environ.get("BENCH_MESSAGES", "50000"))


def pubsub() -> None:
    with zhub.Client.connect(url) as reader, zhub.Client.connect(url) as writer:
        sub = reader.subscribe("bench.")
        body = b"x" * 100
        started = time.perf_counter()
        done = threading.Event()
        got = [0]

        def read() -> None:
            while got[0] + sub.missed < N:
                if sub.recv(timeout=1) is not None:
                    got[0] += 1
            done.set()

        thread = threading.Thread(target=read)
        thread.start()
        for _ in range(N):
            writer.publish_bytes("bench.t", body)
        thread.join()
        elapsed = time.perf_counter() - started
        print(f"pub/sub 100 B: {got[0] / elapsed:,.0f} msg/s received ({sub.missed} missed of {N})")


def requests() -> None:
    worker = zhub.Worker.connect(url, "bench.echo")
    thread = threading.Thread(target=worker.run, args=(lambda b: b,), daemon=True)
    thread.start()
    with zhub.Client.connect(url) as client:
        client.request_bytes("bench.echo", b"warm")
        count = 2000
        started = time.perf_counter()
        for _ in range(count):
            client.request_bytes("bench.echo", b"x" * 100)
        elapsed = time.perf_counter() - started
        print(f"requests to a Python worker, one at a time: {count / elapsed:,.0f}/s "
              f"({elapsed / count * 1e6:,.0f} us each)")
        started = time.perf_counter()
        for _ in range(count):
            client.request("zhub.info", None)
        elapsed = time.perf_counter() - started
        print(f"requests to a built-in (zhub.info): {count / elapsed:,.0f}/s")
        started = time.perf_counter()
        for i in range(count):
            client.kv.put("bench.key", i)
        elapsed = time.perf_counter() - started
        print(f"KV puts, one at a time (synced): {count / elapsed:,.0f}/s")
        client.kv.delete("bench.key")
    worker.close()


pubsub()
requests()
