package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTopFromMetrics reads a flowexport exposition and checks that the
// remote ASes are summed over hostnames and sorted by bytes.
func TestTopFromMetrics(t *testing.T) {
	const expo = `# HELP flow_receive_bytes_total Bytes received.
flow_receive_bytes_total{destination_as="64512",destination_as_name="DEMO-NET",hostname="a",source_as="15169",source_as_name="GOOGLE"} 100
flow_receive_bytes_total{destination_as="64512",destination_as_name="DEMO-NET",hostname="b",source_as="15169",source_as_name="GOOGLE"} 50
flow_receive_bytes_total{destination_as="64512",destination_as_name="DEMO-NET",hostname="a",source_as="13335",source_as_name="CLOUDFLARE"} 1000
flow_receive_flows_total{destination_as="64512",destination_as_name="DEMO-NET",hostname="a",source_as="13335",source_as_name="CLOUDFLARE"} 3
flow_transmit_bytes_total{destination_as="3356",destination_as_name="LEVEL3",hostname="a",source_as="64512",source_as_name="DEMO-NET"} 7
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(expo)) }))
	defer srv.Close()
	var out bytes.Buffer
	if err := run([]string{"top", "5", "-", srv.URL}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	cf, g := strings.Index(got, "AS13335"), strings.Index(got, "AS15169")
	if cf < 0 || g < 0 || cf > g || !strings.Contains(got, "150 B") || !strings.Contains(got, "AS3356") {
		t.Errorf("unexpected table:\n%s", got)
	}
}

func TestBadArguments(t *testing.T) {
	if err := run([]string{"nope"}, &bytes.Buffer{}); err == nil {
		t.Error("no error for an unknown command")
	}
}
