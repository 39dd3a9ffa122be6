#!/usr/bin/env bash
# Side-by-side throughput of flowpublish and a bare franz-go producer, into
# the same dev broker (kfake with --data-dir), with the same 200-byte records.
#
#   scripts/bench/bench-publish.sh [RECORDS [RUNS]]     # default 2000000 records, 3 runs
#
# (a) benchpublish produce: the frames of a pre-generated bin file, loaded in
#     memory first, produced as record values (timed: the production only);
# (b) flowpublish reading the same file on stdin (timed: the whole process).
# Both use flowpublish's default producer settings (acks=all, idempotent, no
# compression). Runs alternate; each prints records/s and client CPU-seconds
# per million records; the last line gives medians and the ratio.
# FP_ARGS adds flowpublish flags, e.g. FP_ARGS="--key sampler_address".
#
#   RATE=500000 scripts/bench/bench-publish.sh [RECORDS [RUNS]]
#
# instead feeds flowpublish at that fixed rate (benchpublish feed, 256 KiB
# writes as flowenrich's) into a fresh dev broker per run, and prints the
# CPU-seconds per million records of flowpublish and of the broker, then the
# best and median of each. INPUT=file.bin feeds that bin stream instead of
# generated records (e.g. flowgen --pcap | flowcollect -r | flowenrich);
# BASE=path/to/flowpublish alternates runs with another build of it.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000000}
RUNS=${2:-3}
work=$(mktemp -d)
broker_pid=
cleanup() {
	if [[ -n $broker_pid ]]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/devbroker" ./scripts/dev/devbroker
(cd scripts/bench && go build -o "$work/benchpublish" ./benchpublish) # the bench's own module
go build -o "$work/flowpublish" ./cmd/flowpublish

# start_broker DIR TOPICS: a dev broker in the background; sets broker_pid and addr.
start_broker() {
	: >"$work/broker.out" # not the previous broker's line
	"$work/devbroker" --listen 127.0.0.1:0 --data-dir "$1" --topic "$2" --partitions 4 \
		>"$work/broker.out" 2>"$work/broker.err" &
	broker_pid=$!
	addr=
	for _ in $(seq 100); do grep -q listening "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
	addr=$(awk '/listening/ {print $4}' "$work/broker.out")
	[[ -n $addr ]] || { cat "$work/broker.err"; exit 1; }
}
stop_broker() { kill "$broker_pid"; wait "$broker_pid" || true; broker_pid=; }
# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

if [[ ${RATE:-0} != 0 ]]; then
	input=${INPUT:-$work/flows.bin}
	[[ -n ${INPUT:-} ]] || "$work/benchpublish" gen -n "$N" -o "$input"
	builds=("flowpublish=$work/flowpublish")
	[[ -z ${BASE:-} ]] || builds+=("base=$BASE")
	hz=$(getconf CLK_TCK)
	echo "$input at $RATE records/s into a fresh dev broker (kfake, data dir) per run, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
	echo "(records/s: over flowpublish's whole run, which includes the feeder's loading of the file)"
	TIMEFORMAT='%R %U %S'
	: >"$work/rate.txt"
	for i in $(seq "$RUNS"); do
		for build in "${builds[@]}"; do
			name=${build%%=*} bin=${build#*=}
			start_broker "$work/kafka-$i-$name" flows
			b0=$(cpu_ticks "$broker_pid")
			"$work/benchpublish" feed -rate "$RATE" -i "$input" |
				{ time "$bin" --brokers "$addr" --topic flows --log-level info ${FP_ARGS:-} \
					>/dev/null 2>"$work/fp.err"; } 2>"$work/fp.time" || { cat "$work/fp.err"; exit 1; }
			b1=$(cpu_ticks "$broker_pid")
			stop_broker
			rm -rf "$work/kafka-$i-$name"
			read -r real user sys <"$work/fp.time"
			n=$(sed -n 's/.*msg=done read=\([0-9]*\).*/\1/p' "$work/fp.err")
			awk -v name="$name" -v n="$n" -v w="$real" -v c="$(awk -v u="$user" -v s="$sys" 'BEGIN { print u+s }')" \
				-v b="$(((b1 - b0)))" -v hz="$hz" 'BEGIN {
				printf "%-12s %9.0f records/s  flowpublish %5.3f  devbroker %5.3f CPU-s per million records\n", name, n/w, c/(n/1e6), b/hz/(n/1e6) }' |
				tee -a "$work/rate.txt"
		done
	done
	for build in "${builds[@]}"; do
		name=${build%%=*}
		awk -v name="$name" '$1 == name { fp[++n] = $5; br[n] = $7 }
			function sort(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t } }
			END { sort(fp, n); sort(br, n); m = int((n + 1) / 2)
				printf "%-12s flowpublish best %.3f median %.3f, devbroker best %.3f median %.3f CPU-s per million records (%d runs)\n", name, fp[1], fp[m], br[1], br[m], n }' "$work/rate.txt"
	done
	exit 0
fi

topics=$(for i in $(seq "$RUNS"); do printf 'bare%d,fp%d,' "$i" "$i"; done)
start_broker "$work/kafka" "$topics"

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
