package export

import (
	"time"
)

// Counter parses Kafka record values and counts them into a Table. It is
// used by one goroutine; Begin and End bracket a batch, during which the
// table is locked, so a scrape never sees half a batch.
type Counter struct {
	table  *Table
	parser Parser
	rec    Record
}

// NewCounter counts into t. With Config.Users it reads the user fields
// too.
func NewCounter(t *Table) *Counter {
	c := &Counter{table: t}
	if t.cfg.Users {
		if err := c.parser.ReadFields(userFields...); err != nil {
			panic(err) // flow.proto lost a field flowexport is built on
		}
	}
	return c
}

// Begin starts a batch of records received at now.
func (c *Counter) Begin(now time.Time) { c.table.begin(now) }

// End ends the batch.
func (c *Counter) End() { c.table.end() }

// Count parses one value and counts it. counted is false for a valid
// record that touches no exported family (neither --asn nor --all-pairs);
// err is set for a value that is no flow record, which is then skipped.
func (c *Counter) Count(value []byte) (f Format, counted bool, err error) {
	if err := c.parser.Parse(value, &c.rec); err != nil {
		return c.rec.Format, false, err
	}
	return c.rec.Format, c.table.addLocked(&c.rec), nil
}
