// Package e2e holds the end-to-end tests of the whole chain: real exporters
// (softflowd, pmacctd) -> flowcollect | flowenrich | flowpublish -> the dev
// broker -> flowexport -> Prometheus, checked with kcat and PromQL against
// the traffic's ground truth. Run them with `go test -v ./scripts/e2e/`; they
// skip under -short.
package e2e
