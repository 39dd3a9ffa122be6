//go:build !linux

package flowgen

import (
	"net"
	"time"
)

// Only Linux has UDP GSO: one datagram per message elsewhere.
const gsoControlLen = 0

func gsoSupported(*net.UDPConn) bool { return false }

func appendGSOControl(b []byte, _ int) []byte { return b }

func gsoRefused(error) bool { return false }

// sleeper is time.Sleep elsewhere.
type sleeper struct{}

func (*sleeper) sleep(d time.Duration) { time.Sleep(d) }
