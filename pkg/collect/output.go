package collect

import (
	"fmt"
	"os"
	"sync"
)

// FileOutput appends to a file and reopens it on demand, so that logrotate
// can move the file away and signal (SIGHUP) for a new one. Writes come
// whole batches at a time from the collector's single writer, so the lock
// is taken per batch, never per record.
type FileOutput struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// OpenFileOutput opens path for appending, creating it if needed.
func OpenFileOutput(path string) (*FileOutput, error) {
	o := &FileOutput{path: path}
	f, err := o.open()
	if err != nil {
		return nil, err
	}
	o.f = f
	return o, nil
}

func (o *FileOutput) open() (*os.File, error) {
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("collect: output: %w", err)
	}
	return f, nil
}

// Write appends p.
func (o *FileOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Write(p)
}

// Reopen opens the path anew and closes the old file. If the open fails
// the old file is kept, and the error says why.
func (o *FileOutput) Reopen() error {
	f, err := o.open()
	if err != nil {
		return err
	}
	o.mu.Lock()
	old := o.f
	o.f = f
	o.mu.Unlock()
	return old.Close()
}

// Close syncs and closes the file.
func (o *FileOutput) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.f.Close()
}
