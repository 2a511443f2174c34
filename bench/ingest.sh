#!/usr/bin/env bash
# Durable ingest against a do-nothing libmicrohttpd server, in the same run: wrk loads each with
# binary-mode events (300-byte bodies, 64 connections) for DURATION seconds, then this prints
# both rates, their ratio, weir's p99 latency and its peak resident memory. Two more runs: the
# do-nothing server in its --durable mode (it answers once the bodies are fdatasync'd, parking
# each connection as weir does: the least a durable server must do), and weir through an
# attribute-only JavaScript filter (?filter=), with what each costs.
#
# Usage: bench/ingest.sh [DURATION] (default 15). Needs a built tree (build/) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-15}
conns=64
threads=2
build=build
[ -x "$build/src/weir" ] || { echo "build weir first (scripts/test.sh or scripts/run.sh)"; exit 1; }
cc -O2 -o "$build/null_server" bench/null_server.c $(pkg-config --cflags --libs libmicrohttpd)

work=$(mktemp -d)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

port_null=18180
port_durable=18181
port_sink=18280
port_api=18281

"$build/null_server" "$port_null" "$threads" &
pids+=($!)
"$build/null_server" "$port_durable" "$threads" --durable "$work/durable" &
pids+=($!)
"$build/src/weir" serve --sink-addr "127.0.0.1:$port_sink" --api-addr "127.0.0.1:$port_api" \
    --data-dir "$work/data" --log-level warn 2>"$work/weir.log" &
weir_pid=$!
pids+=($weir_pid)
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$port_api/readyz" >/dev/null && break
    sleep 0.1
done
curl -sf -X PUT "127.0.0.1:$port_api/api/v2/namespaces/bench" >/dev/null
curl -sf -X PUT "127.0.0.1:$port_api/api/v2/namespaces/bench/filters/attrs" \
    --data-binary 'if (event.type.indexOf("bench") < 0) { return null; } return event;' >/dev/null

run() { # url -> wrk output
    wrk -t "$threads" -c "$conns" -d "${duration}s" --latency -s bench/binary_event.lua "$1"
}
rate() { awk '/^Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {print $2}'; }

run "http://127.0.0.1:$port_null/" >"$work/null.txt"
run "http://127.0.0.1:$port_durable/" >"$work/durable.txt"
run "http://127.0.0.1:$port_sink/bench" >"$work/weir.txt"
run "http://127.0.0.1:$port_sink/bench?filter=attrs" >"$work/filter.txt"

null_rate=$(rate <"$work/null.txt")
durable_rate=$(rate <"$work/durable.txt")
weir_rate=$(rate <"$work/weir.txt")
filter_rate=$(rate <"$work/filter.txt")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/weir.txt")
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$weir_pid/status")
stored=$(curl -s "127.0.0.1:$port_api/metrics" | awk -F' ' '/outcome="stored"/ {s += $2} END {print s+0}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "do-nothing server:  ${null_rate} req/s"
echo "weir serve:         ${weir_rate} req/s (${stored} events stored, non-2xx: ${non2xx:-0})"
echo "ratio:              $(ratio "$weir_rate" "$null_rate")"
echo "weir p99 latency:   $(p99 <"$work/weir.txt")"
echo "weir peak RSS:      $((rss_kib / 1024)) MiB"
echo "durable do-nothing: ${durable_rate} req/s, p99 $(p99 <"$work/durable.txt")" \
    "($(ratio "$durable_rate" "$null_rate") of the do-nothing server;" \
    "weir reaches $(ratio "$weir_rate" "$durable_rate") of it)"
echo "with a filter:      ${filter_rate} req/s, p99 $(p99 <"$work/filter.txt")" \
    "(ratio to no filter: $(ratio "$filter_rate" "$weir_rate"))"
