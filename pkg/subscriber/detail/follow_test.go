package detail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowpipe/flowpipe/pkg/subscriber"
)

// block is one detail record for session id.
func block(id string) string {
	return fmt.Sprintf("Wed Dec  2 14:37:26 2026\n\tAcct-Status-Type = Start\n\tAcct-Session-Id = %q\n\tNAS-IP-Address = 192.0.2.1\n\tTimestamp = 1796222246\n\n", id)
}

// collector records the session ids applied, in order.
type collector struct {
	mu  sync.Mutex
	ids []string
}

func (c *collector) apply(r *subscriber.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, strings.Clone(r.SessionID))
	return nil
}

func (c *collector) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.ids
	c.ids = nil
	return ids
}

func newFollower(t *testing.T, c *collector, patterns ...string) *Follower {
	t.Helper()
	f, err := NewFollower(FollowerConfig{Patterns: patterns, Apply: c.apply})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	h, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteString(s); err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func poll(t *testing.T, f *Follower, c *collector, want ...string) {
	t.Helper()
	if err := f.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !slices.Equal(got, want) {
		t.Fatalf("applied %q, want %q", got, want)
	}
}

func TestFollowGrowthAndPartialRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detail")
	c := &collector{}
	f := newFollower(t, c, path)
	poll(t, f, c) // no file yet
	b := block("s2")
	appendFile(t, path, block("s1")+b[:20])
	poll(t, f, c, "s1")
	appendFile(t, path, b[20:len(b)-1]) // all but the blank line
	poll(t, f, c)
	appendFile(t, path, "\n"+block("s3"))
	poll(t, f, c, "s2", "s3")
	poll(t, f, c)
}

func TestFollowRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "detail")
	c := &collector{}
	f := newFollower(t, c, path)
	appendFile(t, path, block("s1"))
	poll(t, f, c, "s1")
	// logrotate: renamed away (out of the pattern) with a last record not
	// read yet, whose blank line never came; a new file takes the name.
	appendFile(t, path, strings.TrimSuffix(block("s2"), "\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, block("s3"))
	poll(t, f, c, "s2", "s3")
	if len(f.files) != 1 {
		t.Errorf("%d files open, want 1", len(f.files))
	}
	appendFile(t, path, block("s4"))
	poll(t, f, c, "s4")
}

func TestFollowGlobRenameKeepsPosition(t *testing.T) {
	dir := t.TempDir()
	c := &collector{}
	f := newFollower(t, c, filepath.Join(dir, "detail*"))
	appendFile(t, filepath.Join(dir, "detail"), block("s1"))
	poll(t, f, c, "s1")
	// Renamed within the pattern: the same file, not read again.
	if err := os.Rename(filepath.Join(dir, "detail"), filepath.Join(dir, "detail-20260101")); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(dir, "detail-20260101"), block("s2"))
	appendFile(t, filepath.Join(dir, "detail"), block("s3"))
	poll(t, f, c, "s3", "s2")
}

func TestFollowTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detail")
	c := &collector{}
	f := newFollower(t, c, path)
	appendFile(t, path, block("s1")+block("s2"))
	poll(t, f, c, "s1", "s2")
	if err := os.Truncate(path, 0); err != nil { // copytruncate
		t.Fatal(err)
	}
	appendFile(t, path, block("s3"))
	poll(t, f, c, "s3")
}

func TestFollowRestartResumes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "detail")
	c := &collector{}
	f := newFollower(t, c, filepath.Join(dir, "detail*"))
	appendFile(t, path, block("s1")+block("s2"))
	poll(t, f, c, "s1", "s2")
	saved := f.Positions()

	// Down: the file grows, is rotated within the pattern, a new one starts.
	appendFile(t, path, block("s3"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, block("s4"))

	g := newFollower(t, c, filepath.Join(dir, "detail*"))
	if err := g.Restore(saved); err != nil {
		t.Fatal(err)
	}
	poll(t, g, c, "s4", "s3")
}

func TestFollowRejectsOtherFileWithSavedInode(t *testing.T) {
	dir := t.TempDir()
	c := &collector{}
	// A position saved for another file...
	old := filepath.Join(dir, "old")
	appendFile(t, old, block("old-1"))
	f := newFollower(t, c, old)
	poll(t, f, c, "old-1")
	saved := f.files[onlyKey(f)].pos
	// ...restored for this file's inode, as if the inode had been reused
	// after the old file was deleted: the fingerprint tells them apart.
	path := filepath.Join(dir, "detail")
	appendFile(t, path, block("other-1")+block("other-2"))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	g := newFollower(t, c, path)
	g.saved[keyOf(st)] = saved
	poll(t, g, c, "other-1", "other-2")
}

func onlyKey(f *Follower) fileKey {
	for k := range f.files {
		return k
	}
	return fileKey{}
}

func TestFollowRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detail")
	c := &collector{}
	f, err := NewFollower(FollowerConfig{Patterns: []string{path}, Apply: c.apply, Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	appendFile(t, path, block("s1"))
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		c.mu.Lock()
		n := len(c.ids)
		c.mu.Unlock()
		if n > 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := c.take(); !slices.Equal(got, []string{"s1"}) {
		t.Fatalf("applied %q", got)
	}
	// After Run, the positions are still known.
	if len(f.Positions()) == 0 {
		t.Error("no position after Run")
	}
}

func TestFollowCountsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "detail")
	var counts subscriber.Counts
	tbl := subscriber.New(subscriber.Config{})
	f, err := NewFollower(FollowerConfig{Patterns: []string{path}, Apply: tbl.Apply, Counts: &counts})
	if err != nil {
		t.Fatal(err)
	}
	appendFile(t, path, block("s1")+"Date\n\tFramed-IP-Address = nope\n\n"+"Date\n\tUser-Name = \"x\"\n\n"+
		"Date\n\tAcct-Status-Type = Failed\n\tAcct-Session-Id = \"f\"\n\tTimestamp = 1\n\n")
	if err := f.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	src := subscriber.SourceDetail
	if counts.Read[src].Load() != 4 || counts.Rejected[src][subscriber.ReasonMalformed].Load() != 1 ||
		counts.Rejected[src][subscriber.ReasonNoStatus].Load() != 1 || counts.Rejected[src][subscriber.ReasonUnusedStatus].Load() != 1 {
		t.Errorf("read %d, rejected %v", counts.Read[src].Load(), &counts.Rejected[src])
	}
	if tbl.Len() != 1 {
		t.Errorf("%d sessions, want 1", tbl.Len())
	}
}

// TestFollowIdleFiles: a file read to its end and unchanged for a while is
// closed, keeps its position, and is opened again when it grows; the
// position of a file gone is forgotten.
func TestFollowIdleFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "detail-20260101")
	c := &collector{}
	f := newFollower(t, c, filepath.Join(dir, "detail-*"))
	appendFile(t, path, block("s1"))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	poll(t, f, c, "s1")
	if len(f.files) != 0 || len(f.saved) != 1 {
		t.Fatalf("idle file still open: %d open, %d saved", len(f.files), len(f.saved))
	}
	poll(t, f, c)
	if len(f.files) != 0 {
		t.Fatal("unchanged idle file reopened")
	}
	if len(f.Positions()) == 0 {
		t.Error("idle file's position not reported")
	}
	appendFile(t, path, block("s2"))
	poll(t, f, c, "s2")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	poll(t, f, c)
	if len(f.files) != 0 || len(f.saved) != 0 {
		t.Errorf("gone file: %d open, %d saved", len(f.files), len(f.saved))
	}
}
