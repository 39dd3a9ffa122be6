#!/usr/bin/env bash
# Side-by-side throughput of flowpublish and a bare franz-go producer, into
# the same dev broker (kfake with --data-dir), same 200-byte records.
#
#   scripts/bench-publish.sh [RECORDS]     # default 2000000
#
# Prints records/s and client CPU-seconds per million records for each, and
# flowpublish's share of the bare producer's rate. Each side runs against a
# fresh topic of the same broker.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
work=$(mktemp -d)
broker_pid=
cleanup() {
	[[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/devbroker" ./scripts/devbroker
go build -o "$work/benchpublish" ./scripts/benchpublish
go build -o "$work/flowpublish" ./cmd/flowpublish

"$work/devbroker" --listen 127.0.0.1:0 --data-dir "$work/kafka" --topic bare,flowpublish --partitions 4 \
	>"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
for _ in $(seq 100); do grep -q listening "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
addr=$(awk '/listening/ {print $4}' "$work/broker.out")
[[ -n $addr ]] || { cat "$work/broker.err"; exit 1; }

"$work/benchpublish" gen -n "$N" -o "$work/flows.bin"
echo "broker $addr, $N records of 200 bytes ($(du -h "$work/flows.bin" | cut -f1)), $(nproc) CPUs"

TIMEFORMAT='%R %U %S'
measure() { # name, command...: prints "name rate cpu_per_million"
	local name=$1; shift
	local t
	t=$( { time "$@" >/dev/null 2>"$work/$name.err"; } 2>&1 ) || { cat "$work/$name.err"; exit 1; }
	read -r real user sys <<<"$t"
	awk -v n="$N" -v r="$real" -v u="$user" -v s="$sys" -v name="$name" \
		'BEGIN { printf "%-12s %10.0f records/s  %6.2f CPU-s per million records  (%.2fs wall, %.2fs user, %.2fs sys)\n", name, n/r, (u+s)/(n/1e6), r, u, s }'
}
bare=$(measure bare "$work/benchpublish" produce -brokers "$addr" -topic bare -n "$N")
echo "$bare"
fp=$(measure flowpublish sh -c "${FP_ENV:-} exec '$work/flowpublish' --brokers '$addr' --topic flowpublish --log-level warn < '$work/flows.bin'")
echo "$fp"
awk -v a="$(awk '{print $2}' <<<"$bare")" -v b="$(awk '{print $2}' <<<"$fp")" \
	'BEGIN { printf "flowpublish / bare producer: %.0f%%\n", 100*b/a }'
