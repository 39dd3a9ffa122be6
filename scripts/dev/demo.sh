#!/usr/bin/env bash
# demo.sh (make demo): the whole flowpipe chain on loopback.
#
#   dev broker (kfake) <- flowcollect | flowenrich | flowpublish <- flowgen (IPFIX, sFlow)
#                      -> flowexport -> Prometheus (if installed)    <- softflowd (if installed)
#
# Prints the top AS pairs every 10 s and where to look. Ctrl-C stops
# everything in order: generators, flowcollect (the chain drains to the
# broker), flowexport, Prometheus, broker. Nothing is deleted: logs are in
# scripts/.demo/logs (the previous run's in logs.previous), broker data in
# scripts/.demo/kafka, Prometheus data in scripts/.demo/prometheus.
#
# Environment:
#   DEMO_DURATION=30   stop by itself after 30 s (default: run until Ctrl-C)
#   DEMO_RATE=2000     flowgen IPFIX records/s (sFlow runs at a quarter of it)
#   DEMO_GEO=0         do not try to fetch the free geo databases (npm)
#   FLOWPIPE_BIN=bin   where the four tools are (make build)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

DEMO=scripts/.demo
LOGS=$DEMO/logs
BIN=${FLOWPIPE_BIN:-bin}
DURATION=${DEMO_DURATION:-0}
RATE=${DEMO_RATE:-2000}
MONITORED_AS=64512

declare -A PID=() RC=()
failed=0
stopping=0

say() { printf 'demo: %s\n' "$*"; }

# fail reports a component that did not start, stops what did and exits 1.
fail() {
	printf 'demo: ERROR: %s\n' "$1" >&2
	if [ -n "${2:-}" ] && [ -f "$2" ]; then
		printf 'demo: last lines of %s:\n' "$2" >&2
		tail -n 15 "$2" | sed 's/^/    /' >&2
	fi
	stop_all
	exit 1
}

# start NAME CMD...: runs CMD in its own session (so that Ctrl-C reaches
# only this script, which then stops the components in order), logging to
# $LOGS/NAME.log.
start() {
	local name=$1
	shift
	setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
	PID[$name]=$!
}

running() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

# wait_exit NAME SECONDS: waits for NAME to exit (killing it after SECONDS)
# and records its exit code.
wait_exit() {
	local name=$1 secs=$2 pid=${PID[$1]:-} i=0
	[ -n "$pid" ] || return 0
	while kill -0 "$pid" 2>/dev/null && [ "$i" -lt $((secs * 10)) ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "$name did not stop within ${secs}s; killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	RC[$name]=$?
	unset "PID[$name]"
}

# stop NAME SECONDS: SIGTERM to NAME's whole session, then wait_exit.
stop() {
	[ -n "${PID[$1]:-}" ] || return 0
	kill -TERM -- "-${PID[$1]}" 2>/dev/null || kill -TERM "${PID[$1]}" 2>/dev/null
	wait_exit "$1" "$2"
}

# wait_log NAME TEXT COUNT SECONDS: waits until NAME's log has COUNT lines
# with TEXT; fails if NAME exits or time runs out.
wait_log() {
	local name=$1 text=$2 count=$3 secs=$4 i=0 n
	while n=$(grep -c -- "$text" "$LOGS/$name.log" 2>/dev/null); [ "${n:-0}" -lt "$count" ]; do
		running "$name" || fail "$name exited while starting" "$LOGS/$name.log"
		[ "$i" -ge $((secs * 10)) ] && fail "$name not ready after ${secs}s" "$LOGS/$name.log"
		sleep 0.1
		i=$((i + 1))
	done
}

wait_http() { # NAME URL SECONDS
	local i=0
	until "$DEMO/bin/demoutil" wait-http "$2" 1 2>/dev/null; do
		running "$1" || fail "$1 exited while starting" "$LOGS/$1.log"
		i=$((i + 1))
		[ "$i" -ge "$3" ] && fail "$1 not answering on $2 after ${3}s" "$LOGS/$1.log"
	done
}

stop_all() {
	[ "$stopping" -eq 1 ] && return
	stopping=1
	say "stopping: generators, then flowcollect (the chain drains), flowexport, prometheus, broker"
	stop softflowd 5
	stop flowgen-sflow 5
	stop flowgen-ipfix 5
	# Only flowcollect is signalled: flowenrich and flowpublish see the end
	# of their input, flush everything to the broker and exit.
	stop flowcollect 30
	wait_exit flowpublish 60
	stop flowexport 15
	stop prometheus 15
	stop devbroker 15
	for name in flowcollect flowpublish flowexport devbroker; do
		if [ -n "${RC[$name]:-}" ] && [ "${RC[$name]}" -ne 0 ]; then
			printf 'demo: ERROR: %s exited %s; see %s\n' "$name" "${RC[$name]}" "$LOGS/$name.log" >&2
			failed=1
		fi
	done
	if [ -f "$LOGS/flowpublish.log" ]; then
		say "flowpublish: $(grep 'msg=done' "$LOGS/flowpublish.log" | tail -n 1 | sed 's/.*msg=done //')"
	fi
	say "kept: logs in $LOGS/, broker data in $DEMO/kafka/ (reused by the next run), Prometheus data in $DEMO/prometheus/"
}

on_signal() {
	echo
	stop_all
	exit "$failed"
}
trap on_signal INT TERM

# --- preparation -----------------------------------------------------------
for tool in flowcollect flowenrich flowpublish flowexport; do
	[ -x "$BIN/$tool" ] || { echo "demo: ERROR: $BIN/$tool missing: run make build (or set FLOWPIPE_BIN)" >&2; exit 1; }
done
command -v go >/dev/null || { echo "demo: ERROR: go is needed to build the dev broker and the generator" >&2; exit 1; }
mkdir -p "$DEMO/bin"
if [ -d "$LOGS" ]; then
	rm -rf "$LOGS.previous"
	mv "$LOGS" "$LOGS.previous"
fi
mkdir -p "$LOGS"
say "building the dev broker, flowgen and demoutil into $DEMO/bin"
go build -o "$DEMO/bin/" ./scripts/dev/devbroker ./scripts/dev/flowgen ./scripts/dev/demo/demoutil >"$LOGS/build.log" 2>&1 ||
	fail "go build failed" "$LOGS/build.log"
U=$DEMO/bin/demoutil

port() { "$U" free-port "$1" "$2" || fail "no free $1 port"; }
KAFKA_PORT=$(port tcp 9092)
EXPORT_PORT=$(port tcp 9590)
COLLECT_METRICS_PORT=$(port tcp 8080)
PROM_PORT=$(port tcp 9090)
NETFLOW_PORT=$(port udp 2055)
SFLOW_PORT=$(port udp 6343)

# Enrichment: the free databases when they can be had, plus the demo's
# networks file (AS overrides for private and documentation space).
NETS=$DEMO/networks.yaml
GEO=scripts/.geo
# --asn-override: flowgen's records carry random AS numbers of their own,
# which the demo's AS plan replaces.
ENRICH_ARGS=(--networks "$NETS" --asn-override)
if [ ! -f "$GEO/asn.mmdb" ] && [ "${DEMO_GEO:-1}" != 0 ] && command -v npm >/dev/null; then
	say "fetching the free geo databases (npm; log in $LOGS/fetch-geo-db.log)"
	timeout 300 scripts/dev/fetch-geo-db.sh >"$LOGS/fetch-geo-db.log" 2>&1 || say "could not fetch them; using the networks file only"
fi
if [ -f "$GEO/asn.mmdb" ] && [ "${DEMO_GEO:-1}" != 0 ]; then
	cp scripts/dev/demo/networks.yaml "$NETS"
	ENRICH_ARGS+=(--asn-db "$GEO/asn.mmdb")
	[ -f "$GEO/dbip-country.mmdb" ] && ENRICH_ARGS+=(--country-db "$GEO/dbip-country.mmdb")
	say "enrichment: $GEO/asn.mmdb (AS of public addresses) + scripts/dev/demo/networks.yaml"
else
	cat scripts/dev/demo/networks.yaml scripts/dev/demo/networks-public.yaml >"$NETS"
	say "enrichment: scripts/dev/demo/networks.yaml + networks-public.yaml (coarse stand-in ASes; no databases)"
fi

# --- components, downstream first -------------------------------------------
start devbroker "$DEMO/bin/devbroker" --listen "127.0.0.1:$KAFKA_PORT" --data-dir "$DEMO/kafka" --topic flows --partitions 4
wait_log devbroker "listening on" 1 30
BROKER=127.0.0.1:$KAFKA_PORT

start flowexport "$BIN/flowexport" --brokers "$BROKER" --topic flows --asn "$MONITORED_AS" \
	--metrics-listen "127.0.0.1:$EXPORT_PORT" --start-offset earliest --max-pairs 100000
wait_http flowexport "http://127.0.0.1:$EXPORT_PORT/metrics" 20

PROM_URL=-
RUN=$(date +%Y%m%dT%H%M%S)
if command -v prometheus >/dev/null; then
	mkdir -p "$DEMO/prometheus"
	sed -e "s/@FLOWEXPORT@/127.0.0.1:$EXPORT_PORT/" -e "s/@FLOWCOLLECT@/127.0.0.1:$COLLECT_METRICS_PORT/" -e "s/@RUN@/$RUN/" \
		scripts/dev/demo/prometheus.yml.tmpl >"$DEMO/prometheus.yml"
	start prometheus prometheus --config.file="$DEMO/prometheus.yml" --storage.tsdb.path="$DEMO/prometheus" \
		--web.listen-address="127.0.0.1:$PROM_PORT"
	wait_http prometheus "http://127.0.0.1:$PROM_PORT/-/ready" 30
	PROM_URL=http://127.0.0.1:$PROM_PORT
else
	say "prometheus is not installed: the top AS pairs come from flowexport's /metrics"
fi

# flowcollect | flowenrich | flowpublish, joined through a fifo so that
# flowcollect alone can be signalled (as scripts/deploy/systemd/flowpipe-pipeline).
rm -f "$DEMO/collected"
mkfifo "$DEMO/collected" || fail "mkfifo $DEMO/collected"
setsid "$BIN/flowenrich" "${ENRICH_ARGS[@]}" <"$DEMO/collected" 2>"$LOGS/flowenrich.log" |
	setsid "$BIN/flowpublish" --brokers "$BROKER" --topic flows --key sampler_address >"$LOGS/flowpublish.log" 2>&1 &
PID[flowpublish]=$!
setsid "$BIN/flowcollect" --listen "netflow://127.0.0.1:$NETFLOW_PORT" --listen "sflow://127.0.0.1:$SFLOW_PORT" \
	--metrics-listen "127.0.0.1:$COLLECT_METRICS_PORT" >"$DEMO/collected" 2>"$LOGS/flowcollect.log" </dev/null &
PID[flowcollect]=$!
wait_log flowcollect "msg=listening" 2 20
running flowpublish || fail "flowenrich | flowpublish exited while starting" "$LOGS/flowpublish.log"

# --- traffic -------------------------------------------------------------------
start flowgen-ipfix "$DEMO/bin/flowgen" --protocol ipfix --domain 42 --ipv6-ratio 0.2 \
	--send "127.0.0.1:$NETFLOW_PORT" --rate "$RATE"
start flowgen-sflow "$DEMO/bin/flowgen" --protocol sflow --exporter 192.0.2.2 --sampling-rate 64 --seed 2 \
	--send "127.0.0.1:$SFLOW_PORT" --rate $((RATE / 4 + 1))
if command -v softflowd >/dev/null; then
	"$U" traffic-pcap "$DEMO/traffic.pcap" || fail "cannot write $DEMO/traffic.pcap"
	# softflowd exports the pcap's flows (NetFlow v9) every 10 s.
	start softflowd bash -c 'while :; do softflowd -r "$1" -n "127.0.0.1:$2" -v 9 -a -D -p "$3"; sleep 10; done' \
		softflowd-loop "$DEMO/traffic.pcap" "$NETFLOW_PORT" "$DEMO/softflowd.pid"
	SOFTFLOWD="softflowd replaying $DEMO/traffic.pcap (testtraffic) as NetFlow v9 every 10 s"
else
	SOFTFLOWD="softflowd not installed (apt-get install softflowd to add real exporter traffic)"
fi
sleep 1
for name in flowgen-ipfix flowgen-sflow; do
	running "$name" || fail "$name exited" "$LOGS/$name.log"
done

cat <<EOF

demo: running. Traffic: flowgen IPFIX at $RATE records/s and sFlow (1:64) to 127.0.0.1:$NETFLOW_PORT/$SFLOW_PORT;
      $SOFTFLOWD.
      Monitored AS: $MONITORED_AS (DEMO-NET: 10.0.0.0/8, 2001:db8::/32).
  Prometheus        ${PROM_URL/#-/(not installed)}   e.g. topk(5, sum by (source_as_name) (rate(flow_receive_bytes_total{demo_run="$RUN"}[30s])))
  flowexport        http://127.0.0.1:$EXPORT_PORT/metrics
  flowcollect       http://127.0.0.1:$COLLECT_METRICS_PORT/metrics
  Kafka (devbroker) $BROKER, topic flows   e.g. kcat -C -b $BROKER -t flows -c 1 -f '%s' | $BIN/flowenrich --format json --networks $NETS
  logs              $LOGS/
Top AS pairs every 10 s$([ "$DURATION" != 0 ] && echo ", for ${DURATION}s")$([ "$DURATION" = 0 ] && echo "; Ctrl-C stops everything").

EOF

began=$SECONDS
while :; do
	sleep 10 &
	wait $! 2>/dev/null
	for name in devbroker flowexport flowcollect flowpublish flowgen-ipfix flowgen-sflow; do
		if ! running "$name"; then
			printf 'demo: ERROR: %s stopped unexpectedly; see %s\n' "$name" "$LOGS/$name.log" >&2
			tail -n 10 "$LOGS/$name.log" 2>/dev/null | sed 's/^/    /' >&2
			failed=1
			stop_all
			exit 1
		fi
	done
	"$U" top 5 "$PROM_URL" "http://127.0.0.1:$EXPORT_PORT/metrics" "demo_run=\"$RUN\"" || say "could not read the top pairs"
	echo
	if [ "$DURATION" != 0 ] && [ $((SECONDS - began)) -ge "$DURATION" ]; then
		say "DEMO_DURATION=${DURATION}s reached"
		stop_all
		exit "$failed"
	fi
done
