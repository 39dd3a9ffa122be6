// Command mkasn-mmdb builds a GeoLite2-ASN-shaped MaxMind DB (records with
// autonomous_system_number and autonomous_system_organization) from the CSV
// files of the @ip-location-db/asn npm package, so that flowenrich gets
// AS numbers and names without a MaxMind licence.
//
//	go run ./scripts/dev/mkasn-mmdb -o asn.mmdb asn-ipv4.csv asn-ipv6.csv
//
// Each CSV line is "first_ip,last_ip,asn,organisation" (addresses as text;
// the *-num.csv variants with integer addresses are not read). Ranges are
// split into prefixes by the writer. Reserved and aliased ranges, which a
// GeoLite2 file never holds, are skipped and counted.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkasn-mmdb:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkasn-mmdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "asn.mmdb", "output file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: mkasn-mmdb [-o asn.mmdb] asn-ipv4.csv [asn-ipv6.csv ...]")
	}
	b := newBuilder()
	for _, path := range fs.Args() {
		if err := b.addFile(path); err != nil {
			return err
		}
	}
	if err := b.write(*out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "mkasn-mmdb: %s: %d ranges, %d AS records, %d reserved or aliased ranges skipped\n",
		*out, b.ranges, len(b.values), b.skipped)
	return nil
}

type asKey struct {
	asn uint32
	org string
}

type builder struct {
	tree    *mmdbwriter.Tree
	values  map[asKey]mmdbtype.Map
	ranges  int
	skipped int
}

func newBuilder() *builder {
	b := &builder{values: make(map[asKey]mmdbtype.Map)}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType: "GeoLite2-ASN",
		Description: map[string]string{
			"en": "GeoLite2-ASN-shaped database built by flowpipe's mkasn-mmdb from @ip-location-db/asn (RouteViews and DB-IP data, CC BY 4.0)",
		},
		Languages:    []string{"en"},
		RecordSize:   28,
		BuildEpoch:   time.Now().Unix(),
		KeyGenerator: keyGen{},
	})
	if err != nil {
		panic(err) // constant options
	}
	b.tree = tree
	return b
}

// keyGen dedups records by their two fields instead of hashing their
// serialised form, which is most of the build time otherwise.
type keyGen struct{}

func (keyGen) Key(v mmdbtype.DataType) ([]byte, error) {
	m := v.(mmdbtype.Map)
	asn := m["autonomous_system_number"].(mmdbtype.Uint32)
	org := m["autonomous_system_organization"].(mmdbtype.String)
	key := strconv.AppendUint(nil, uint64(asn), 10)
	key = append(key, 0)
	return append(key, org...), nil
}

func (b *builder) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if err := b.addRecord(rec); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}

func (b *builder) addRecord(rec []string) error {
	if len(rec) < 3 {
		return fmt.Errorf("want first_ip,last_ip,asn,organisation, got %d fields", len(rec))
	}
	first, err := netip.ParseAddr(rec[0])
	if err != nil {
		return err
	}
	last, err := netip.ParseAddr(rec[1])
	if err != nil {
		return err
	}
	if first.Is4() != last.Is4() || last.Less(first) {
		return fmt.Errorf("bad range %s-%s", first, last)
	}
	asn, err := strconv.ParseUint(rec[2], 10, 32)
	if err != nil {
		return fmt.Errorf("asn %q: %w", rec[2], err)
	}
	if asn == 0 {
		return nil // unannounced space: leave it out, as GeoLite2 does
	}
	org := ""
	if len(rec) > 3 {
		org = rec[3]
	}
	k := asKey{uint32(asn), org}
	v, ok := b.values[k]
	if !ok {
		v = mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(asn),
			"autonomous_system_organization": mmdbtype.String(org),
		}
		b.values[k] = v
	}
	b.ranges++
	err = b.tree.InsertRange(net.IP(first.AsSlice()), net.IP(last.AsSlice()), v)
	var reserved *mmdbwriter.ReservedNetworkError
	var aliased *mmdbwriter.AliasedNetworkError
	if errors.As(err, &reserved) || errors.As(err, &aliased) {
		b.skipped++
		return nil
	}
	return err
}

func (b *builder) write(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := b.tree.WriteTo(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Rename: a running flowenrich watching path never reads half a file.
	return os.Rename(tmp, path)
}
