package wire_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowpipe/flowpipe/pkg/wire"
)

func TestJSONScannerObject(t *testing.T) {
	var s wire.JSONScanner
	s.Reset([]byte(` { "a" : 1 , "b\u0063":[true, null,"x"], "d":{} } `))
	more, err := s.Open('{')
	var keys []string
	for more && err == nil {
		key, esc, kerr := s.Key()
		if kerr != nil {
			t.Fatal(kerr)
		}
		if esc {
			key = wire.UnquoteJSON(nil, key)
		}
		keys = append(keys, string(key))
		if err = s.Skip(); err == nil {
			more, err = s.More('}')
		}
	}
	if err != nil || !s.AtEnd() || strings.Join(keys, ",") != "a,bc,d" {
		t.Fatalf("keys %q, err %v", keys, err)
	}
}

func TestJSONScannerErrors(t *testing.T) {
	for _, tc := range []struct {
		text   string
		offset int
		reason string
	}{
		{`[1 2]`, 3, "expected ',' or ']'"},
		{`{"a" 1}`, 5, "expected ':' after a key"},
		{`{1:2}`, 1, "expected a key"},
		{`{"a":1,}`, 7, "expected a key"},
		{`"a` + "\x01" + `"`, 2, "control character in a string"},
		{`"\x"`, 1, "invalid escape"},
		{`"\u12G4"`, 1, "invalid \\u escape"},
		{`"abc`, 0, "unterminated string"},
		{`01`, 0, "invalid number"},
		{`-`, 0, "invalid number"},
		{`1.e5`, 0, "invalid number"},
		{`nul`, 0, "expected true or false"},
		{`+1`, 0, "expected a value"},
		{strings.Repeat("[", 70), 65, "nested too deep"},
	} {
		var s wire.JSONScanner
		s.Reset([]byte(tc.text))
		err := s.Skip()
		var se *wire.SyntaxError
		if !errors.As(err, &se) || se.Offset != tc.offset || se.Reason != tc.reason {
			t.Errorf("%s: %v, want %q at %d", tc.text, err, tc.reason, tc.offset)
		}
	}
}

func TestJSONScannerNumbers(t *testing.T) {
	for _, tc := range []struct {
		text     string
		min, max int64
		want     int64
		err      string
	}{
		{`0`, 0, 10, 0, ""},
		{`"7"`, 0, 10, 7, ""},
		{`null`, 0, 10, 0, ""},
		{`11`, 0, 10, 0, "number out of range"},
		{`-3`, -5, 5, -3, ""},
		{`"-5"`, -5, 5, -5, ""},
		{`-6`, -5, 5, 0, "number out of range"},
		{`-3`, 0, 5, 0, "expected an unsigned integer"},
		{`-null`, -5, 5, 0, "invalid number"},
		{`-9223372036854775808`, math.MinInt64, math.MaxInt64, math.MinInt64, ""},
		{`1.5`, 0, 5, 0, "expected an unsigned integer"},
		{`007`, 0, 10, 0, "number with a leading zero"},
		{`"x"`, 0, 10, 0, "expected an unsigned integer"},
	} {
		var s wire.JSONScanner
		s.Reset([]byte(tc.text))
		got, err := s.Int(tc.min, tc.max)
		if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Int(%s) = %d, %v; want %d, %q", tc.text, got, err, tc.want, tc.err)
		}
	}
}

// FuzzJSONScanner checks the scanner against encoding/json: Skip accepts
// a text (a value and white space) exactly when json.Valid does, nesting
// beyond MaxDepth aside; a string reads as json.Unmarshal reads it; and
// AppendJSONString writes a valid string that reads back as the input
// (each invalid UTF-8 byte as U+FFFD).
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e+3,{"b":"\"}"}],"c":null}`, `"\ud83d\ude00 \ud800x"`, ` [true,false] `,
		`{"type":"IPFIX","bytes":1500}`, `"a\u0000\t"`, `-0.0e-0`, `{"a" 1}`, "\"\xff\"", `[[[]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		var s wire.JSONScanner
		s.Reset(text)
		s.SkipSpace()
		start := s.Pos()
		err := s.Skip()
		var se *wire.SyntaxError
		if err != nil && (!errors.As(err, &se) || se.Offset < 0 || se.Offset > len(text)) {
			t.Fatalf("error %v for %d bytes", err, len(text))
		}
		deep := se != nil && se.Reason == "nested too deep"
		if ok := err == nil && s.AtEnd(); ok != json.Valid(text) && !deep {
			t.Fatalf("scanner %v (%v), json.Valid %v for %q", ok, err, !ok, text)
		}
		if err == nil && s.AtEnd() && text[start] == '"' {
			var want string
			if err := json.Unmarshal(text, &want); err != nil {
				t.Fatal(err)
			}
			s.Reset(text[start:])
			raw, esc, _ := s.String()
			got := string(raw)
			if esc {
				got = string(wire.UnquoteJSON(nil, raw))
			}
			if got != want {
				t.Fatalf("string %q reads %q, encoding/json %q", text, got, want)
			}
		}
		out := wire.AppendJSONString(nil, string(text))
		var back string
		if err := json.Unmarshal(out, &back); err != nil || back != validUTF8(string(text)) {
			t.Fatalf("AppendJSONString(%q) = %s: %v, reads %q", text, out, err, back)
		}
	})
}

// validUTF8 replaces each byte of invalid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func BenchmarkJSONScannerSkip(b *testing.B) {
	text := []byte(`{"type":"IPFIX","time_received_ns":1700000000123456789,"sampler_address":"10.0.0.254","src_addr":"198.51.100.7","etype":"IPv4","proto":"UDP","bgp_communities":[4227858433,65000],"src_as_name":"Ex\u00e9mple","x":{"a":[1,-2.5e+3,null]}}`)
	var s wire.JSONScanner
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		s.Reset(text)
		if err := s.Skip(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestJSONScannerKeyIs(t *testing.T) {
	for _, tc := range []struct {
		text, name string
		ok         bool
		rest       string
	}{
		{`"bytes":1`, "bytes", true, "1"},
		{`"bytes" : 1`, "bytes", false, ""},
		{`"bytes": 1`, "bytes", true, "1"},
		{`"bytesx":1`, "bytes", false, ""},
		{`"byte":1`, "bytes", false, ""},
		{`"bytes"`, "bytes", false, ""},
		{` "bytes":1`, "bytes", false, ""},
		{`"by\u0074es":1`, "bytes", false, ""},
	} {
		var s wire.JSONScanner
		s.Reset([]byte(tc.text))
		if got := s.KeyIs(tc.name); got != tc.ok || got && string(s.Rest()) != tc.rest || !got && s.Pos() != 0 {
			t.Errorf("KeyIs(%q) on %q = %v, rest %q", tc.name, tc.text, got, s.Rest())
		}
	}
}
