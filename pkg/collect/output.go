package collect

import (
	"github.com/flowpipe/flowpipe/pkg/rotate"
)

// FileOutput is the collector's --output: one file appended to and
// reopened on demand (logrotate moves it and signals SIGHUP), or, with a
// time pattern (flows-%Y%m%d-%H.json), files that rotate by themselves
// between records and are never rewritten once closed (see pkg/rotate).
// Writes come whole batches at a time from the collector's single writer.
type FileOutput struct {
	w *rotate.Writer
}

// OutputConfig says where and how the output files are written.
type OutputConfig struct {
	Path string
	// Keep is how many closed files of a time pattern to keep (0: all).
	Keep int
	// Frames: the stream is varint-framed bin; otherwise JSON lines.
	Frames bool
	// OnRotate is told about each new file of a time pattern.
	OnRotate func(closed, opened string, removed []string, err error)
}

// OpenFileOutput opens the output, creating the file if needed.
func OpenFileOutput(cfg OutputConfig) (*FileOutput, error) {
	b := rotate.Lines
	if cfg.Frames {
		b = rotate.Frames
	}
	w, err := rotate.New(rotate.Config{Path: cfg.Path, Keep: cfg.Keep, Boundary: b, OnRotate: cfg.OnRotate})
	if err != nil {
		return nil, err
	}
	return &FileOutput{w: w}, nil
}

// Write appends p.
func (o *FileOutput) Write(p []byte) (int, error) { return o.w.Write(p) }

// Reopen opens the path anew and closes the old file. If the open fails
// the old file is kept, and the error says why.
func (o *FileOutput) Reopen() error { return o.w.Reopen() }

// Path is the file being written.
func (o *FileOutput) Path() string { return o.w.Path() }

// Close closes the file.
func (o *FileOutput) Close() error { return o.w.Close() }
