package decode

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestReasons(t *testing.T) {
	exp := netip.MustParseAddrPort("192.0.2.1:2055")
	err := errors.Join(
		&Error{Protocol: IPFIX, Exporter: exp, SetID: 256, Err: ErrTemplateMissing},
		&Error{Protocol: IPFIX, Exporter: exp, Err: fmt.Errorf("set length 3: %w", ErrMalformed)},
		errors.New("boom"),
	)
	if got, want := Reasons(err), []string{"template_missing", "malformed", "other"}; !slices.Equal(got, want) {
		t.Fatalf("Reasons = %v, want %v", got, want)
	}
	if Reasons(nil) != nil {
		t.Fatal("Reasons(nil) not nil")
	}
	e := &Error{Protocol: IPFIX, Exporter: exp, Domain: 7, SetID: 256, Err: ErrTruncated}
	if got := e.Error(); got != "ipfix: exporter 192.0.2.1:2055 domain 7 set 256: truncated" {
		t.Fatalf("Error() = %q", got)
	}
}
