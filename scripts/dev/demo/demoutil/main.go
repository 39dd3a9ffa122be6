// Command demoutil holds the small jobs scripts/dev/demo.sh needs without
// depending on curl, jq or ss being installed:
//
//	demoutil free-port tcp|udp PREFERRED   print PREFERRED if free on 127.0.0.1, else a free port
//	demoutil wait-http URL SECONDS         exit 0 once URL answers 200, 1 after SECONDS
//	demoutil traffic-pcap PATH             write testtraffic's default flows as a pcap (for softflowd -r)
//	demoutil top N PROMETHEUS_URL|-  METRICS_URL [SELECTOR]
//	                                       print the top AS pairs: rates from Prometheus (series
//	                                       matching SELECTOR, e.g. demo_run="123"), or totals
//	                                       from flowexport's /metrics when PROMETHEUS_URL is -
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowpipe/flowpipe/pkg/testutil/testtraffic"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demoutil:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: demoutil free-port|wait-http|traffic-pcap|top [args]")
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "free-port" && len(rest) == 2:
		p, err := freePort(rest[0], rest[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(out, p)
		return nil
	case cmd == "wait-http" && len(rest) == 2:
		secs, err := strconv.Atoi(rest[1])
		if err != nil {
			return err
		}
		return waitHTTP(rest[0], time.Duration(secs)*time.Second)
	case cmd == "traffic-pcap" && len(rest) == 1:
		_, err := testtraffic.Write(rest[0], testtraffic.Default())
		return err
	case cmd == "top" && (len(rest) == 3 || len(rest) == 4):
		n, err := strconv.Atoi(rest[0])
		if err != nil {
			return err
		}
		selector := ""
		if len(rest) == 4 {
			selector = rest[3]
		}
		return top(out, n, rest[1], rest[2], selector)
	}
	return fmt.Errorf("bad arguments: %q", args)
}

func freePort(network, preferred string) (int, error) {
	try := func(port string) (int, error) {
		switch network {
		case "tcp":
			l, err := net.Listen("tcp", "127.0.0.1:"+port)
			if err != nil {
				return 0, err
			}
			defer l.Close()
			return l.Addr().(*net.TCPAddr).Port, nil
		case "udp":
			c, err := net.ListenPacket("udp", "127.0.0.1:"+port)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			return c.LocalAddr().(*net.UDPAddr).Port, nil
		}
		return 0, fmt.Errorf("network %q: want tcp or udp", network)
	}
	if p, err := try(preferred); err == nil {
		return p, nil
	}
	return try("0")
}

func waitHTTP(u string, timeout time.Duration) error {
	c := http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %v", u, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pair is one row of the table: the remote AS of the monitored one.
type pair struct {
	as, name    string
	bytes, pkts float64
	flows       float64
}

// top prints the remote ASes that the monitored AS received most from and
// transmitted most to.
func top(out io.Writer, n int, prom, metrics, selector string) error {
	type family struct{ title, metric, remote string }
	families := []family{
		{"received by the monitored AS, from", "flow_receive", "source_as"},
		{"transmitted by the monitored AS, to", "flow_transmit", "destination_as"},
	}
	unit, per := "per second over the last 30 s (Prometheus)", "/s"
	if prom == "-" {
		unit, per = "since flowexport started (its /metrics)", ""
	}
	fmt.Fprintf(out, "top AS pairs at %s, %s\n", time.Now().Format("15:04:05"), unit)
	for _, f := range families {
		var rows []pair
		var err error
		if prom == "-" {
			rows, err = fromMetrics(metrics, f.metric, f.remote)
		} else {
			rows, err = fromPrometheus(prom, f.metric, f.remote, selector)
		}
		if err != nil {
			return err
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].bytes > rows[j].bytes })
		fmt.Fprintf(out, "  %s\n", f.title)
		if len(rows) == 0 {
			fmt.Fprintln(out, "    (nothing yet)")
		}
		for i, r := range rows {
			if i == n {
				break
			}
			name := r.name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(out, "    AS%-10s %-32.32s %8s B%s %8s pkt%s %7s flows%s\n",
				r.as, name, si(r.bytes), per, si(r.pkts), per, si(r.flows), per)
		}
	}
	return nil
}

func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// fromPrometheus asks for per-second rates; selector keeps out the series
// of earlier runs still in the TSDB (they stay visible for 5 minutes).
func fromPrometheus(base, metric, remote, selector string) ([]pair, error) {
	rows := map[string]*pair{}
	for _, unit := range []string{"bytes", "packets", "flows"} {
		q := fmt.Sprintf("sum by (%s, %s_name) (rate(%s_%s_total{%s}[30s]))", remote, remote, metric, unit, selector)
		resp, err := http.Get(strings.TrimRight(base, "/") + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  [2]any            `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("prometheus: %w", err)
		}
		for _, s := range r.Data.Result {
			text, _ := s.Value[1].(string)
			v, _ := strconv.ParseFloat(text, 64)
			add(rows, s.Metric[remote], s.Metric[remote+"_name"], unit, v)
		}
	}
	return list(rows), nil
}

func fromMetrics(u, metric, remote string) ([]pair, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	rows := map[string]*pair{}
	for _, line := range strings.Split(string(body), "\n") {
		for _, unit := range []string{"bytes", "packets", "flows"} {
			rest, ok := strings.CutPrefix(line, metric+"_"+unit+"_total{")
			if !ok {
				continue
			}
			labels, value, ok := strings.Cut(rest, "} ")
			if !ok {
				continue
			}
			v, _ := strconv.ParseFloat(value, 64)
			l := parseLabels(labels)
			add(rows, l[remote], l[remote+"_name"], unit, v)
		}
	}
	return list(rows), nil
}

// parseLabels reads `a="x",b="y"` (flowexport's label values carry no
// escaped quotes in practice; an escaped one only shortens a name).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		v, rest2, _ := strings.Cut(rest, `"`)
		out[k] = v
		s = strings.TrimPrefix(rest2, ",")
	}
	return out
}

func add(rows map[string]*pair, as, name, unit string, v float64) {
	r := rows[as+"\x00"+name]
	if r == nil {
		r = &pair{as: as, name: name}
		rows[as+"\x00"+name] = r
	}
	switch unit {
	case "bytes":
		r.bytes += v
	case "packets":
		r.pkts += v
	case "flows":
		r.flows += v
	}
}

func list(rows map[string]*pair) []pair {
	out := make([]pair, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	return out
}
