#!/usr/bin/env bash
# Side-by-side throughput of flowpublish and a bare franz-go producer, into
# the same dev broker (kfake with --data-dir), with the same 200-byte records.
#
#   scripts/bench-publish.sh [RECORDS [RUNS]]     # default 2000000 records, 3 runs
#
# (a) benchpublish produce: the frames of a pre-generated bin file, loaded in
#     memory first, produced as record values (timed: the production only);
# (b) flowpublish reading the same file on stdin (timed: the whole process).
# Both use flowpublish's default producer settings (acks=all, idempotent, no
# compression). Runs alternate; each prints records/s and client CPU-seconds
# per million records; the last line gives medians and the ratio.
# FP_ARGS adds flowpublish flags, e.g. FP_ARGS="--key sampler_address".
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000000}
RUNS=${2:-3}
work=$(mktemp -d)
broker_pid=
cleanup() {
	if [[ -n $broker_pid ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/devbroker" ./scripts/devbroker
go build -o "$work/benchpublish" ./scripts/benchpublish
go build -o "$work/flowpublish" ./cmd/flowpublish

topics=$(for i in $(seq "$RUNS"); do printf 'bare%d,fp%d,' "$i" "$i"; done)
"$work/devbroker" --listen 127.0.0.1:0 --data-dir "$work/kafka" --topic "$topics" --partitions 4 \
	>"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
for _ in $(seq 100); do grep -q listening "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
addr=$(awk '/listening/ {print $4}' "$work/broker.out")
[[ -n $addr ]] || { cat "$work/broker.err"; exit 1; }

"$work/benchpublish" gen -n "$N" -o "$work/flows.bin"
echo "broker $addr (kfake, data dir), $N records of 200 bytes, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"

report() { # name records wall cpu
	awk -v name="$1" -v n="$2" -v w="$3" -v c="$4" \
		'BEGIN { printf "%-12s %9.0f records/s  %5.2f CPU-s per million records  (%.2fs, %.2f CPU-s)\n", name, n/w, c/(n/1e6), w, c }'
}
TIMEFORMAT='%R %U %S'
: >"$work/bare.txt"; : >"$work/fp.txt"
for i in $(seq "$RUNS"); do
	read -r n wall cpu < <("$work/benchpublish" produce -brokers "$addr" -topic "bare$i" -i "$work/flows.bin")
	report bare "$n" "$wall" "$cpu" | tee -a "$work/bare.txt"
	t=$( { time "$work/flowpublish" --brokers "$addr" --topic "fp$i" --log-level warn ${FP_ARGS:-} \
		<"$work/flows.bin" >/dev/null 2>"$work/fp.err"; } 2>&1 ) || { cat "$work/fp.err"; exit 1; }
	read -r real user sys <<<"$t"
	report flowpublish "$N" "$real" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u+s }')" | tee -a "$work/fp.txt"
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(awk '{print $2}' "$work/bare.txt" | median); f=$(awk '{print $2}' "$work/fp.txt" | median)
bc=$(awk '{print $4}' "$work/bare.txt" | median); fc=$(awk '{print $4}' "$work/fp.txt" | median)
awk -v b="$b" -v f="$f" -v bc="$bc" -v fc="$fc" 'BEGIN {
	printf "median: bare %.0f records/s (%.2f CPU-s/M), flowpublish %.0f records/s (%.2f CPU-s/M): %.0f%% of bare\n", b, bc, f, fc, 100*f/b }'
