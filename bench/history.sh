#!/usr/bin/env bash
# History at scale, in one run of weir on loopback:
#  (1) COUNT events are stored in one namespace (batched mode, batches of 1000, 4 senders),
#      then pages of 100 of its history are timed N times each: newest, deep (reached by
#      following cursors), oldest, and filtered by type, source, text and time window;
#  (2) the fan-out to SUBSCRIBERS live streams (history/subscribe) of a namespace while the sink
#      takes RATE events a second for SECONDS, against the same load with no subscriber as the
#      baseline: events sent and received, 202 -> subscriber latency, and the sink's rate and
#      latency with and without the subscribers.
# Everything is bounded (each helper runs under a timeout) and prints figures; nothing asserts
# a time.
#
# Usage: bench/history.sh [COUNT] [N] [RATE] [SECONDS] [SUBSCRIBERS]
#        (defaults 1000000, 200, 1000, 10, 100). Needs a built tree (BUILD, default build/) and
#        node. The store of COUNT = 1000000 takes about 350 MB in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-1000000}
n=${2:-200}
rate=${3:-1000}
seconds=${4:-10}
subscribers=${5:-100}
build=${BUILD:-build}
[ -x "$build/src/weir" ] || { echo "build weir first (scripts/test.sh or scripts/run.sh)"; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that an interrupted run still cleans up

port_sink=18680
port_api=18681
sink="http://127.0.0.1:$port_sink"
api="http://127.0.0.1:$port_api"
started=$(date +%s.%N)
# A port that answers already belongs to someone else (another run?): readyz would pass against
# it before our weir had failed to listen, so refuse to start instead.
for port in "$port_sink" "$port_api"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use (another run?)"
        exit 1
    fi
done

# The preload commits with fsync like any other load: batches of 1000 are group-committed, so
# --no-sync made it barely faster (about 10% when measured) and is not used.
"$build/src/weir" serve --sink-addr "127.0.0.1:$port_sink" --api-addr "127.0.0.1:$port_api" \
    --data-dir "$work/data" --log-level warn --max-subscribers $((subscribers + 16)) \
    2>"$work/weir.log" &
weir_pid=$!
pids+=($weir_pid)
for _ in $(seq 100); do
    curl -sf "$api/readyz" >/dev/null && break
    sleep 0.1
done
kill -0 "$weir_pid" 2>/dev/null || { cat "$work/weir.log"; exit 1; }
for ns in hist base fan; do
    curl -sf -X PUT "$api/api/v2/namespaces/$ns" >/dev/null
done

# Runs a helper in the background under a time limit, so that cleanup can stop it too.
helper() { # seconds, args...
    local limit=$1
    shift
    timeout "$limit" node bench/history_load.mjs "$@" &
    local pid=$!
    pids+=($pid)
    wait "$pid"
}
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }
# weir's CPU time so far (user + system), in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$weir_pid/stat"; }
hz=$(getconf CLK_TCK)
cpu_since() { # ticks before, wall time before (date +%s.%N)
    awk -v a="$1" -v b="$(ticks)" -v hz="$hz" -v t0="$2" -v t1="$(date +%s.%N)" 'BEGIN {
        printf "weir CPU: %.1f s in %.1f s (%.0f%% of one core)\n", (b - a) / hz, t1 - t0,
            100 * (b - a) / hz / (t1 - t0)
    }'
}

echo "== history of $count events"
helper 300 preload "$sink/hist" "$count" 4
echo "store on disk:  $(du -sm "$work/data" | cut -f1) MiB (durable: fsync'd commits, no --no-sync)"
helper 300 query "$api" hist "$count" "$n"

echo
echo "== fan-out: $rate events/s for $seconds s, 300-byte binary-mode events"
# Into files, not through a pipe: a helper in a pipeline would run in a subshell, out of reach
# of cleanup. Its "#sink" line is for the ratios below, not for people.
t=$(ticks) w=$(date +%s.%N)
helper 120 fanout "$sink/base" "$api" base 0 "$rate" "$seconds" >"$work/base.txt"
grep -v '^#' "$work/base.txt"
cpu_since "$t" "$w"
t=$(ticks) w=$(date +%s.%N)
helper 120 fanout "$sink/fan" "$api" fan "$subscribers" "$rate" "$seconds" >"$work/fan.txt"
grep -v '^#' "$work/fan.txt"
cpu_since "$t" "$w"
# "#sink RATE P50 P99": the ratios of the sink's figures with and without subscribers.
read -r _ base_rate base_p50 base_p99 < <(grep '^#sink' "$work/base.txt")
read -r _ fan_rate fan_p50 fan_p99 < <(grep '^#sink' "$work/fan.txt")
awk -v br="$base_rate" -v fr="$fan_rate" -v b5="$base_p50" -v f5="$fan_p50" -v b9="$base_p99" \
    -v f9="$fan_p99" 'BEGIN {
    printf "with / without subscribers: rate %.2f, 202 p50 %.2f, 202 p99 %.2f\n", fr / br, f5 / b5, f9 / b9
}'

echo
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$weir_pid/status")
echo "weir peak RSS:  $((rss_kib / 1024)) MiB"
echo "whole run:      $(secs "$started") s"
if grep -q '"level":"error"' "$work/weir.log"; then
    echo "weir logged errors:"
    grep '"level":"error"' "$work/weir.log" | head -5
fi
