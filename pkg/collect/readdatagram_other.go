//go:build !linux

package collect

// datagramReader is the socket reader: one datagram a read, through the
// net package.
type datagramReader = portableReader

var newDatagramReader = newPortableReader
