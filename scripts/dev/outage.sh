#!/usr/bin/env bash
# outage.sh: a Kafka outage under load, with the built tools, and what got through.
#
#   flowgen (IPFIX over UDP) -> flowcollect | flowpublish [--spool-dir] -> dev broker (--data-dir)
#
# The broker is stopped for OUTAGE seconds in the middle of the run and
# started again on its data; at the end the script prints what flowgen sent,
# what flowcollect decoded (and dropped at its socket) and what is in Kafka.
# Without a spool, flowpublish holds --max-buffered-records (100 000) in memory
# and then stops reading: the pipe fills, flowcollect blocks and its socket
# overflows. With the spool (the default here), nothing is lost.
#
# Usage: scripts/dev/outage.sh                     # spool, 25 k flows/s, 60 s outage (~2 minutes)
#        OUTAGE=15 RATE=50000 SPOOL=0 scripts/dev/outage.sh   # as before the spool
# Environment:
#   RATE=25000    flowgen IPFIX records/s
#   OUTAGE=60     seconds the broker is down
#   BEFORE=10     seconds of traffic before the outage, and AFTER=15 after it
#   SPOOL=1       flowpublish --spool-dir (0: without)
#   FLOWPIPE_BIN=bin   where flowcollect and flowpublish are (make build)
# Everything (logs, broker data, spool) is in a temporary directory, kept when
# KEEP=1. Exit status: 0 when every decoded record is in Kafka and there were no
# kernel drops, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

RATE=${RATE:-25000}
OUTAGE=${OUTAGE:-60}
BEFORE=${BEFORE:-10}
AFTER=${AFTER:-15}
SPOOL=${SPOOL:-1}
BIN=${FLOWPIPE_BIN:-bin}
say() { printf 'outage: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

for t in flowcollect flowpublish; do
	[ -x "$BIN/$t" ] || die "$BIN/$t missing: run make build (or set FLOWPIPE_BIN)"
done
command -v curl >/dev/null || die "curl is needed to read the metrics"
command -v kcat >/dev/null || die "kcat is needed to count the records in Kafka (apt-get install kcat)"
work=$(mktemp -d -t flowpipe-outage.XXXXXX)
declare -A PID=()
cleanup() {
	for p in "${PID[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building the dev broker and flowgen into $work/bin"
go build -o "$work/bin/" ./scripts/dev/devbroker ./scripts/dev/flowgen || die "go build failed"

# Free loopback ports (asked of the kernel, then released).
port() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1]=="udp" else socket.SOCK_STREAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' "$1"; }
BROKER=127.0.0.1:$(port tcp)
UDP=$(port udp)
CM=127.0.0.1:$(port tcp)
PM=127.0.0.1:$(port tcp)

metric() { # metric ADDR NAME: the sum of NAME's samples
	curl -sf "http://$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%.0f\n", s }'
}

start_broker() {
	"$work/bin/devbroker" --listen "$BROKER" --data-dir "$work/kafka" --topic flows --partitions 4 \
		>"$work/devbroker.out" 2>>"$work/devbroker.log" &
	PID[broker]=$!
	for _ in $(seq 100); do
		grep -q "listening on" "$work/devbroker.out" 2>/dev/null && return
		sleep 0.1
	done
	die "the dev broker did not start (see $work/devbroker.log)"
}
stop_broker() {
	kill -TERM "${PID[broker]}"
	wait "${PID[broker]}" 2>/dev/null
	unset 'PID[broker]'
	: >"$work/devbroker.out"
}

start_broker
spool=()
[ "$SPOOL" = 1 ] && spool=(--spool-dir "$work/spool")
mkfifo "$work/pipe"
"$BIN/flowpublish" --brokers "$BROKER" --topic flows --metrics-listen "$PM" "${spool[@]}" \
	<"$work/pipe" 2>"$work/flowpublish.log" &
PID[publish]=$!
"$BIN/flowcollect" --listen "netflow://127.0.0.1:$UDP" --metrics-listen "$CM" \
	>"$work/pipe" 2>"$work/flowcollect.log" &
PID[collect]=$!
for a in "$CM" "$PM"; do
	for _ in $(seq 100); do curl -sf "http://$a/metrics" >/dev/null && break; sleep 0.1; done
done

total=$((BEFORE + OUTAGE + AFTER))
say "sending $RATE IPFIX flows/s for ${total}s; broker down from ${BEFORE}s to $((BEFORE + OUTAGE))s; spool: $([ "$SPOOL" = 1 ] && echo on || echo off)"
"$work/bin/flowgen" --protocol ipfix --send "127.0.0.1:$UDP" --rate "$RATE" --duration "${total}s" 2>"$work/flowgen.log" &
PID[gen]=$!
sleep "$BEFORE"
stop_broker
say "broker stopped"
for ((i = 0; i < OUTAGE; i += 10)); do
	sleep $((OUTAGE - i < 10 ? OUTAGE - i : 10))
	say "$(printf '%3ds down: flowpublish read %s, spooled %s; flowcollect kernel drops %s' $((i + 10 > OUTAGE ? OUTAGE : i + 10)) \
		"$(metric "$PM" flowpublish_records_in_total)" "$(metric "$PM" flowpublish_spool_records)" "$(metric "$CM" flowcollect_kernel_drops_total)")"
done
start_broker
say "broker back"
wait "${PID[gen]}"
unset 'PID[gen]'
sent=$(sed -n 's/.*sent [0-9]* packets (\([0-9]*\) records.*/\1/p' "$work/flowgen.log")
# Let flowcollect empty its socket, then stop it: flowpublish drains at EOF.
prev=-1
for _ in $(seq 50); do
	decoded=$(metric "$CM" flowcollect_records_total)
	[ "$decoded" = "$prev" ] && break
	prev=$decoded
	sleep 0.5
done
kdrops=$(metric "$CM" flowcollect_kernel_drops_total)
qdrops=$(metric "$CM" flowcollect_packets_dropped_total)
kill -TERM "${PID[collect]}"
wait "${PID[collect]}" 2>/dev/null
unset 'PID[collect]'
say "flowcollect stopped; waiting for flowpublish to deliver what it holds"
wait "${PID[publish]}"
rc=$?
unset 'PID[publish]'
inkafka=$(kcat -C -b "$BROKER" -t flows -e -q -f 'x\n' | wc -l)
stop_broker

printf '\n%-28s %12s\n' "flows sent (flowgen)" "$sent"
printf '%-28s %12s\n' "decoded (flowcollect)" "$decoded"
printf '%-28s %12s\n' "kernel drops (datagrams)" "$kdrops"
printf '%-28s %12s\n' "queue drops (datagrams)" "$qdrops"
printf '%-28s %12s\n' "in Kafka" "$inkafka"
printf '%-28s %12s\n' "flowpublish exit" "$rc"
grep -h 'msg=done' "$work/flowpublish.log" | sed 's/^/flowpublish: /'
if [ "$inkafka" = "$decoded" ] && [ "$kdrops" = 0 ] && [ "$rc" = 0 ]; then
	say "nothing lost"
	exit 0
fi
say "LOST $((sent - inkafka)) of $sent flows: $((sent - decoded)) before flowcollect decoded them ($kdrops datagrams dropped by the kernel at its socket), $((decoded - inkafka)) after"
exit 1
