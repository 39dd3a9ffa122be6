#!/usr/bin/env bash
# Measures flowpipe on this machine and writes the figures the README shows:
#   - flowcollect vs goflow2 v2.2.6 on the same loopback UDP load (IPFIX 28
#     records/packet, NetFlow v9, v5, sFlow; bin, and JSON for IPFIX): CPU
#     per million records, highest loss-free rate, peak RSS (scripts/bench/benchcollect),
#   - received vs offered records/s for both collectors -> scripts/bench/plot.png,
#   - each stage alone on a pre-generated file (flowcollect -r, flowenrich,
#     flowpublish into the dev broker, flowexport out of it),
#   - the whole chain flowcollect | flowenrich | flowpublish fed by flowgen at
#     500k IPFIX flows/s, and the highest loss-free chain rate found,
#   - peers: flowcollect, goflow2, nfdump's nfcapd/sfcapd and pmacct's
#     nfacctd/sfacctd (print plugin, CSV) each writing a real file, at 4 000
#     and 16 000 datagrams/s of each protocol, in one alternating sweep: CPU
#     per record of each collector's whole process tree (a cgroup v2 of its
#     own), records counted from each one's output, loss, peak memory,
# into scripts/bench/results.md (also printed on stdout).
#
# Usage: scripts/bench/bench.sh [bench flags...]      # ~25 minutes
#        BENCH_QUICK=1 scripts/bench/bench.sh         # ~3 minutes
#        scripts/bench/bench.sh --only stages,chain   # some sections only
#        scripts/bench/bench.sh --only peers          # the peers sweep alone (~15-20 minutes):
#                                                     # replaces its section of results.md
#        scripts/bench/bench.sh --only profile        # CPU profiles of flowcollect at 16 000
#                                                     # datagrams/s per protocol -> profiles.md
#                                                     # (--profiles-dir DIR keeps the raw ones)
# Environment: GOFLOW2 (a goflow2 binary; v2.2.6 is installed with go install
# if unset and missing), BENCH_QUICK=1. The peers section needs the Debian
# packages nfdump, nfdump-sflow and pmacct, and root for its cgroups (else
# it measures CPU from /proc and says so).
# Run it on an otherwise idle machine: the load average is in the report.
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
work=$(mktemp -d -t flowpipe-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
echo "bench: building into $work/bin" >&2
$GO build -trimpath -o "$work/bin/" ./cmd/flowcollect ./cmd/flowenrich ./cmd/flowpublish ./cmd/flowexport \
	./scripts/dev/devbroker ./scripts/dev/flowgen
# The bench is a module of its own (its plotting libraries stay out of the product's go.mod).
(cd scripts/bench && $GO build -trimpath -o "$work/bin/" . ./benchcollect)

GOFLOW2=${GOFLOW2:-$($GO env GOPATH)/bin/goflow2}
if [ ! -x "$GOFLOW2" ]; then
	echo "bench: installing goflow2 v2.2.6 ..." >&2
	$GO install github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6
fi
# A copy of its own, so that nothing else running goflow2 is mistaken for it.
cp "$GOFLOW2" "$work/bin/goflow2"

args=()
command="scripts/bench/bench.sh"
if [ "${BENCH_QUICK:-0}" != 0 ]; then
	args+=(--quick)
	command="BENCH_QUICK=1 scripts/bench/bench.sh"
fi
[ $# -gt 0 ] && command="$command $*"
"$work/bin/bench" --bin "$work/bin" --goflow2 "$work/bin/goflow2" --work "$work" \
	--command "$command" "${args[@]}" "$@"
