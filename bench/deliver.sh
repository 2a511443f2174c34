#!/usr/bin/env bash
# Delivery: (1) deliveries per second to a local do-nothing target (bench/null_server.c): COUNT
# events are stored while the target is stopped (SIGSTOP), so that their deliveries wait; the
# target is resumed and the time until none is pending gives the rate. (2) The latency from the
# sink's 202 to the target's receipt at a steady RATE events a second for SECONDS.
#
# Usage: bench/deliver.sh [COUNT] [RATE] [SECONDS] (defaults 100000, 1000, 10).
# Needs a built tree (BUILD, default build/) and node.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-100000}
rate=${2:-1000}
seconds=${3:-10}
build=${BUILD:-build}
[ -x "$build/src/weir" ] || { echo "build weir first (scripts/test.sh or scripts/run.sh)"; exit 1; }
cc -O2 -o "$build/null_server" bench/null_server.c $(pkg-config --cflags --libs libmicrohttpd)

work=$(mktemp -d)
pids=()
cleanup() { kill -CONT "${pids[@]}" 2>/dev/null || true; kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port_null=18480
port_sink=18580
port_api=18581
api="http://127.0.0.1:$port_api"

"$build/null_server" "$port_null" 2 &
null_pid=$!
pids+=($null_pid)
"$build/src/weir" serve --sink-addr "127.0.0.1:$port_sink" --api-addr "127.0.0.1:$port_api" \
    --data-dir "$work/data" --log-level warn 2>"$work/weir.log" &
weir_pid=$!
pids+=($weir_pid)
for _ in $(seq 100); do
    curl -sf "$api/readyz" >/dev/null && break
    sleep 0.1
done
curl -sf -X PUT "$api/api/v2/namespaces/bench" >/dev/null
curl -sf -X PUT "$api/api/v2/namespaces/paced" >/dev/null
curl -sf -X POST "$api/api/v2/namespaces/bench/events/listeners" -o /dev/null -d \
    "{\"mode\":\"simple\",\"events\":[{\"type\":\"bench\"}],\"sink\":\"http://127.0.0.1:$port_null/\"}"

pending() { curl -s "$api/metrics" | awk '$1 == "weir_delivery_queue_depth" {print $2}'; }
delivered() {
    curl -s "$api/metrics" | awk '/^weir_deliveries_total/ && /outcome="delivered"/ {s += $2} END {print s+0}'
}

kill -STOP "$null_pid"
node bench/deliver_load.mjs preload "http://127.0.0.1:$port_sink/bench" "$count"
echo "stored $count events; $(pending) deliveries pending"
start=$(date +%s.%N)
kill -CONT "$null_pid"
deadline=$(( $(date +%s) + 120 ))
while [ "$(pending)" != "0" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 0.05
done
end=$(date +%s.%N)
done_n=$(delivered)
echo "delivered:        $done_n in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s"
echo "deliveries/s:     $(awk -v n="$done_n" -v a="$start" -v b="$end" 'BEGIN {printf "%.0f", n / (b - a)}')"
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$weir_pid/status")
echo "weir peak RSS:    $((rss_kib / 1024)) MiB"

node bench/deliver_load.mjs latency "http://127.0.0.1:$port_sink/paced" "$api" paced "$rate" "$seconds"
