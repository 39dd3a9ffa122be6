package collect

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
)

// errQueueEmpty ends a non-waiting read: the kernel holds no datagram.
var errQueueEmpty = errors.New("receive queue empty")

// maxUDPPayload is the largest UDP payload there is; a buffer this size
// never truncates, so a datagram longer than the decoders' buffer is told
// by its length, the same on every system.
const maxUDPPayload = 65535

// drainWait is how long a non-waiting read of portableReader waits: the
// net package has no MSG_DONTWAIT, so a read deadline this close ends the
// drain once the receive queue is empty.
const drainWait = 50 * time.Millisecond

// portableReader reads one datagram a call through the net package. It is
// the socket reader where there is no recvmmsg (every system but Linux) and
// offers what mmsgReader offers, one datagram at a time.
type portableReader struct {
	conn    *net.UDPConn
	size    int // longer datagrams are reported truncated
	buf     []byte
	onBatch func(n int)

	n    int // length of the last datagram
	from netip.AddrPort
}

func newPortableReader(conn *net.UDPConn, _, size int, onBatch func(n int)) (*portableReader, error) {
	return &portableReader{conn: conn, size: size, buf: make([]byte, max(size+1, maxUDPPayload)), onBatch: onBatch}, nil
}

// Read reads one datagram and hands it to onBatch, waiting for it in the
// poller (read deadlines and Close end the wait), or, with dontWait, for
// drainWait at most before it returns errQueueEmpty.
func (r *portableReader) Read(dontWait bool) error {
	if dontWait {
		if err := r.conn.SetReadDeadline(time.Now().Add(drainWait)); err != nil {
			return err
		}
	}
	n, from, err := r.conn.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		if dontWait && errors.Is(err, os.ErrDeadlineExceeded) {
			return errQueueEmpty
		}
		return err
	}
	r.n, r.from = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	r.onBatch(1)
	return nil
}

// datagram returns the datagram of the last read (i is always 0): its
// payload, valid until the next read, its source, and whether it was
// longer than size.
func (r *portableReader) datagram(int) (data []byte, from netip.AddrPort, truncated, ok bool) {
	n := min(r.n, r.size)
	return r.buf[:n:n], r.from, r.n > r.size, r.from.IsValid()
}
