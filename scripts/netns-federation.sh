#!/usr/bin/env bash
# Two zhub brokers in separate network namespaces joined by a veth pair, with `tc netem`
# delay and loss on the link when the kernel has it: a worker on one side serves clients of
# the other; the link is cut mid-traffic (every request is still answered, with a reply or
# an error, before its deadline) and restored (service resumes by itself).
#
# Needs root (namespaces, veth); skips with a message otherwise. Usage:
#   scripts/netns-federation.sh [TARGET_DIR]      (default: target; debug binaries)
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "netns-federation: skipped (needs root for network namespaces)"
    exit 0
fi
if ! command -v ip >/dev/null; then
    echo "netns-federation: skipped (no ip command: iproute2 missing)"
    exit 0
fi
target="${1:-target}"
broker="$(realpath "$target/debug/zhub-broker")"
zhub="$(realpath "$target/debug/zhub")"
work="$(mktemp -d)"
ns1="zhub-fed-a-$$"
ns2="zhub-fed-b-$$"

cleanup() {
    set +e
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    ip netns del "$ns1" 2>/dev/null
    ip netns del "$ns2" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns1"
ip netns add "$ns2"
ip link add "va$$" type veth peer name "vb$$"
ip link set "va$$" netns "$ns1"
ip link set "vb$$" netns "$ns2"
ip -n "$ns1" addr add 10.77.0.1/24 dev "va$$"
ip -n "$ns2" addr add 10.77.0.2/24 dev "vb$$"
for ns in "$ns1" "$ns2"; do ip -n "$ns" link set lo up; done
ip -n "$ns1" link set "va$$" up
ip -n "$ns2" link set "vb$$" up
if ip netns exec "$ns1" tc qdisc add dev "va$$" root netem delay 20ms 5ms loss 1% 2>/dev/null; then
    echo "netns-federation: link with netem delay 20ms +-5ms, loss 1%"
else
    echo "netns-federation: this kernel has no netem; the link runs without delay or loss"
fi

endpoints() { # HOST PORTBASE DATA NAME
    echo --listen "tcp://$1:$(($2))" --publish "tcp://$1:$(($2 + 1))" \
        --subscribe "tcp://$1:$(($2 + 2))" --deliver "tcp://$1:$(($2 + 3))" \
        --cluster "tcp://$1:$(($2 + 5))" --data-dir "$3" --name "$4" \
        --cluster-heartbeat 200ms
}
# shellcheck disable=SC2046
ip netns exec "$ns1" "$broker" $(endpoints 10.77.0.1 5555 "$work/a" a) 2>"$work/a.log" &
# shellcheck disable=SC2046
ip netns exec "$ns2" "$broker" $(endpoints 10.77.0.2 5555 "$work/b" b) \
    --peer tcp://10.77.0.1:5560 2>"$work/b.log" &
url_a=tcp://10.77.0.1:5555
url_b=tcp://10.77.0.2:5555
ip netns exec "$ns2" "$zhub" --url "$url_b" serve echo.b --echo 2>/dev/null &

# Until the peer's service is known at a, a request waits for it, as for a late worker.
reply="$(ip netns exec "$ns1" "$zhub" --url "$url_a" --timeout 30s request echo.b "across the veth")"
[ "$reply" = "across the veth" ] || { echo "unexpected reply: $reply"; exit 1; }
echo "netns-federation: a client in $ns1 was served by a worker in $ns2"
for i in $(seq 1 20); do
    ip netns exec "$ns1" "$zhub" --url "$url_a" --timeout 10s request echo.b "n$i" >/dev/null
done
echo "netns-federation: 20 more requests answered across the link"

# Pub/sub across the link: a subscriber in ns1 hears a publisher in ns2 once its interest has
# crossed (the publisher repeats until then, 10 s at most).
ip netns exec "$ns1" "$zhub" --url "$url_a" sub news. --count 1 >"$work/sub.out" 2>/dev/null &
sub_pid=$!
for _ in $(seq 1 100); do
    kill -0 "$sub_pid" 2>/dev/null || break
    ip netns exec "$ns2" "$zhub" --url "$url_b" pub news.veth "published in $ns2" >/dev/null
    sleep 0.1
done
kill "$sub_pid" 2>/dev/null || true
grep -q "published in $ns2" "$work/sub.out" \
    || { echo "the subscriber in $ns1 heard nothing: $(cat "$work/sub.out")"; exit 1; }
echo "netns-federation: a subscriber in $ns1 heard a publisher in $ns2"

# Cut the link: a request now gets an answer (an error) before its deadline, never silence.
ip -n "$ns1" link set "va$$" down
start=$SECONDS
if ip netns exec "$ns1" "$zhub" --url "$url_a" --timeout 4s request echo.b "cut" >"$work/cut.out" 2>&1; then
    # Answered by b before a noticed the cut is fine too.
    echo "netns-federation: answered just as the link went down"
else
    grep -Eq "timed out|no such service|went away|failed" "$work/cut.out" \
        || { echo "unexpected answer while cut: $(cat "$work/cut.out")"; exit 1; }
    echo "netns-federation: with the link cut, the request was answered: $(cat "$work/cut.out")"
fi
[ $((SECONDS - start)) -le 6 ] || { echo "the answer came after its deadline"; exit 1; }

# Restore it: the peers greet again and the service is back.
ip -n "$ns1" link set "va$$" up
reply="$(ip netns exec "$ns1" "$zhub" --url "$url_a" --timeout 30s request echo.b "healed")"
[ "$reply" = "healed" ] || { echo "unexpected reply after healing: $reply"; exit 1; }
echo "netns-federation: link restored, service resumed"
grep -c "peer session" "$work/a.log" | xargs -I{} echo "netns-federation: broker a logged {} session changes"
echo "netns-federation: ok"
