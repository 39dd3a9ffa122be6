#!/usr/bin/env bash
# Side-by-side benchmark of flowcollect and goflow2 v2.2.6 on the same
# generated UDP load on loopback (IPFIX 28 records/packet, NetFlow v9, v5,
# sFlow). Prints a Markdown table: CPU-seconds per million records and the
# highest loss-free rate of each. Both write bin to /dev/null.
#
# Usage: scripts/bench/bench-collect.sh [benchcollect flags...]
#   e.g. scripts/bench/bench-collect.sh --rate 200000 --duration 10s --search-rates 100000,200000,400000,800000
# Environment: GOFLOW2 (path of a goflow2 binary; installed with go install if unset and missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

GO=${GO:-go}
mkdir -p bin
$GO build -trimpath -o bin/flowcollect ./cmd/flowcollect

GOFLOW2=${GOFLOW2:-$($GO env GOPATH)/bin/goflow2}
if [ ! -x "$GOFLOW2" ]; then
  echo "installing goflow2 v2.2.6 ..." >&2
  $GO install github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6
fi
"$GOFLOW2" -v >&2 || true

(cd scripts/bench && $GO build -o ../../bin/benchcollect ./benchcollect) # the bench's own module
exec bin/benchcollect --flowcollect bin/flowcollect --goflow2 "$GOFLOW2" "$@"
