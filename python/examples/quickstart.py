"""zhub from Python in one page: publish/subscribe, a request to a Python worker, the KV store.

Start a broker, then run this script:

    cargo run --release --bin zhub-broker &
    python python/examples/quickstart.py

ZHUB_URL selects the broker (default tcp://127.0.0.1:5555).
"""

import os
import threading

import zhub

url = os.environ.get("ZHUB_URL", zhub.DEFAULT_URL)
client = zhub.Client.connect(url)
print("connected to zhub", client.info.version)

# Publish/subscribe: subscribe returns once live, so nothing published after it is lost.
sensors = client.subscribe("sensors.")
client.publish("sensors.temp", {"celsius": 21.5})
message = sensors.recv(timeout=5)
print(f"{message.topic}: {message.decode()} (seq {message.seq}, lamport {message.lamport})")

# A request to a named service, served here by a Python worker on a thread.
worker = zhub.Worker.connect(url, "upper")
threading.Thread(target=worker.run, args=(bytes.upper,), daemon=True).start()
print("upper:", client.request_bytes("upper", b"hello, zhub").decode())
try:
    client.request("nosuch", "hi", timeout=0.5)
except zhub.RequestError as e:
    print("nosuch:", e.kind.name, "-", e)

# The key-value store: revisions, compare-and-set, counters.
first = client.kv.put("demo.config", {"rate": 10})
second = client.kv.put("demo.config", {"rate": 20})
print("demo.config =", client.kv.get("demo.config"), "at revision", second)
print("cas from revision", first, "->", client.kv.cas("demo.config", first, {"rate": 0}))
print("cas from revision", second, "->", client.kv.cas("demo.config", second, {"rate": 30}))
print("demo.visits =", client.kv.incr("demo.visits")[0])
client.kv.delete("demo.config")
client.kv.delete("demo.visits")

worker.stop()
worker.close()
client.close()
