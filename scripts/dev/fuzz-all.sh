#!/usr/bin/env bash
# Runs every Fuzz target in the module for a bounded time each. New crashers
# land in the package's testdata/fuzz/ and replay in every plain `go test`.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/../.."
status=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u || true)
  for t in $targets; do
    echo "fuzz $pkg $t ($fuzztime)"
    if ! go test -run='^$' -fuzz="^$t\$" -fuzztime="$fuzztime" -timeout=5m "$pkg" >/tmp/fuzz-$t.log 2>&1; then
      cat /tmp/fuzz-$t.log; status=1
    fi
  done
done
exit $status
