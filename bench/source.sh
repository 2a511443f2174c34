#!/usr/bin/env bash
# The source side: events per second from the broadcast API to a do-nothing sink
# (bench/null_server.c as K_SINK). COUNT events are broadcast while the sink is stopped
# (SIGSTOP), so that they wait in the outbox; the sink is resumed and the time until the outbox
# is empty gives the rate. It runs twice, with one attempt in flight (the default: the sink gets
# the events exactly in order) and with 32, and as a baseline in the same run the delivery
# engine's rate from the same number of events to the same sink through a listener.
#
# Usage: bench/source.sh [COUNT] (default 50000). Needs a built tree (BUILD, default build/)
# and node.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-50000}
build=${BUILD:-build}
[ -x "$build/src/weir" ] || { echo "build weir first (scripts/test.sh or scripts/run.sh)"; exit 1; }
cc -O2 -o "$build/null_server" bench/null_server.c $(pkg-config --cflags --libs libmicrohttpd)

work=$(mktemp -d)
pids=()
cleanup() { kill -CONT "${pids[@]}" 2>/dev/null || true; kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port_null=18880
port_sink=18980
port_api=18981
api="http://127.0.0.1:$port_api"

"$build/null_server" "$port_null" 2 &
null_pid=$!
pids+=($null_pid)

metric() { curl -s "$api/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# start_weir NAME ARGS...: a fresh weir with its own data directory.
start_weir() {
    local name=$1
    shift
    "$build/src/weir" serve --sink-addr "127.0.0.1:$port_sink" --api-addr "127.0.0.1:$port_api" \
        --data-dir "$work/$name" --log-level warn --system-events=false "$@" 2>"$work/$name.log" &
    weir_pid=$!
    pids+=($weir_pid)
    for _ in $(seq 100); do
        curl -sf "$api/readyz" >/dev/null && break
        sleep 0.1
    done
    curl -sf -X PUT "$api/api/v2/namespaces/bench" >/dev/null
}

stop_weir() {
    kill -CONT "$null_pid"
    kill "$weir_pid"
    wait "$weir_pid" 2>/dev/null || true
}

# drain GAUGE: resumes the sink and prints the seconds until GAUGE reads 0 (at most 120).
drain() {
    local start end deadline
    start=$(date +%s.%N)
    kill -CONT "$null_pid"
    deadline=$(($(date +%s) + 120))
    while [ "$(metric "$1")" != "0" ] && [ "$(date +%s)" -lt "$deadline" ]; do
        sleep 0.02
    done
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}'
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN {printf "%.0f", n / s}'; }

# source_run INFLIGHT: broadcasts COUNT events with the sink stopped, then times the outbox.
source_run() {
    start_weir "source$1" --source-sink "http://127.0.0.1:$port_null/" --source-inflight "$1" \
        --outbox-max $((count + 1000))
    kill -STOP "$null_pid"
    node bench/deliver_load.mjs preload "$api/api/v2/namespaces/bench/events/broadcast" "$count"
    local secs sent
    secs=$(drain weir_outbox_depth)
    sent=$(metric weir_source_sent_total)
    echo "source, $1 in flight:  $sent events in $secs s: $(rate "$sent" "$secs") events/s"
    eval "source_rate_$1=$(rate "$sent" "$secs")"
    stop_weir
}

source_run 1
source_run 32

start_weir deliver
curl -sf -X POST "$api/api/v2/namespaces/bench/events/listeners" -o /dev/null -d \
    "{\"mode\":\"simple\",\"events\":[{\"type\":\"bench\"}],\"sink\":\"http://127.0.0.1:$port_null/\"}"
kill -STOP "$null_pid"
node bench/deliver_load.mjs preload "http://127.0.0.1:$port_sink/bench" "$count"
secs=$(drain weir_delivery_queue_depth)
delivered=$(curl -s "$api/metrics" |
    awk '/^weir_deliveries_total/ && /outcome="delivered"/ {s += $2} END {print s+0}')
deliver_rate=$(rate "$delivered" "$secs")
echo "baseline, deliveries: $delivered events in $secs s: $deliver_rate events/s"
stop_weir

echo "ratio to deliveries:  1 in flight $(awk -v a="$source_rate_1" -v b="$deliver_rate" \
    'BEGIN {printf "%.2f", a / b}'), 32 in flight $(awk -v a="$source_rate_32" \
    -v b="$deliver_rate" 'BEGIN {printf "%.2f", a / b}')"
