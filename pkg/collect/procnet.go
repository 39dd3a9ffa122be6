package collect

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// SocketStat is one UDP socket's line of /proc/net/udp or /proc/net/udp6.
type SocketStat struct {
	LocalPort uint16
	Inode     uint64
	RxQueue   uint64 // bytes waiting in the receive queue
	Drops     uint64 // datagrams the kernel dropped (queue full, ...)
}

// ParseProcNetUDP parses the text of /proc/net/udp or /proc/net/udp6.
// Lines that do not parse are skipped: the file's layout is the kernel's.
func ParseProcNetUDP(r io.Reader) ([]SocketStat, error) {
	var out []SocketStat
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 {
			continue
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err1 := strconv.ParseUint(portHex, 16, 16)
		_, rxHex, ok := strings.Cut(f[4], ":")
		if !ok {
			continue
		}
		rx, err2 := strconv.ParseUint(rxHex, 16, 64)
		inode, err3 := strconv.ParseUint(f[9], 10, 64)
		drops, err4 := strconv.ParseUint(f[12], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
			continue
		}
		out = append(out, SocketStat{LocalPort: uint16(port), Inode: inode, RxQueue: rx, Drops: drops})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("collect: reading /proc/net/udp: %w", err)
	}
	return out, nil
}

// socketCollector reports our sockets' kernel drops and receive queues,
// read from /proc at scrape time and matched by inode (and local port).
type socketCollector struct {
	procFiles []string
	drops     *prometheus.Desc
	queue     *prometheus.Desc

	mu      sync.Mutex
	sockets map[uint64]socketID // inode -> listener
}

type socketID struct {
	listener string
	port     uint16
}

func newSocketCollector() *socketCollector {
	return &socketCollector{
		procFiles: []string{"/proc/net/udp", "/proc/net/udp6"},
		drops: prometheus.NewDesc("flowcollect_kernel_drops_total",
			"Datagrams the kernel dropped on our sockets (receive buffer full), from /proc/net/udp{,6}.",
			[]string{"listener"}, nil),
		queue: prometheus.NewDesc("flowcollect_socket_receive_queue_bytes",
			"Bytes waiting in our sockets' receive queues, from /proc/net/udp{,6}.",
			[]string{"listener"}, nil),
		sockets: map[uint64]socketID{},
	}
}

func (c *socketCollector) add(inode uint64, listener string, port uint16) {
	c.mu.Lock()
	c.sockets[inode] = socketID{listener, port}
	c.mu.Unlock()
}

func (c *socketCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.drops
	ch <- c.queue
}

func (c *socketCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	socks := make(map[uint64]socketID, len(c.sockets))
	var listeners []string
	seen := map[string]bool{}
	for k, v := range c.sockets {
		socks[k] = v
		if !seen[v.listener] {
			seen[v.listener] = true
			listeners = append(listeners, v.listener)
		}
	}
	c.mu.Unlock()
	if len(socks) == 0 {
		return
	}
	drops := map[string]uint64{}
	queue := map[string]uint64{}
	for _, path := range c.procFiles {
		f, err := os.Open(path)
		if err != nil {
			continue // no IPv6, or not Linux
		}
		stats, err := ParseProcNetUDP(f)
		f.Close()
		if err != nil {
			continue
		}
		for _, s := range stats {
			if id, ok := socks[s.Inode]; ok && id.port == s.LocalPort {
				drops[id.listener] += s.Drops
				queue[id.listener] += s.RxQueue
			}
		}
	}
	for _, l := range listeners {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(drops[l]), l)
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(queue[l]), l)
	}
}
